"""The QEMU guest agent of a libvirt domain, as a :class:`~hypervisors.guest.GuestAgent`.

Every domain vmlog defines has the virtio-serial ``org.qemu.guest_agent.0`` channel; libvirt owns
the socket and speaks qemu-ga's JSON protocol. Commands go through ``libvirt_qemu.qemuAgentCommand``
(``guest-exec``, ``guest-file-*``, ``guest-get-osinfo``, ...); freezing, thawing, setting the clock
and shutting down use libvirt's own calls for the same agent commands, so libvirt knows the guest's
filesystems are frozen and refuses what must not happen meanwhile.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

from hypervisors.errors import OperationFailed, OperationTimeout, Unsupported
from hypervisors.guest import ExecResult, GuestAgent, GuestInfo, GuestInterface, GuestOS
from hypervisors.libvirt import connection

BACKEND = "kvm"
# Small pieces and a long wait for each: under TCG qemu-ga takes seconds per MiB, and a command libvirt
# gives up on leaves the agent "not available" until it resynchronises.
READ_CHUNK = 64 * 1024
WRITE_CHUNK = 48 * 1024  # 64 KiB of base64 per guest-file-write
FILE_TIMEOUT = 60.0
EXEC_POLL = 0.2


class QemuGuestAgent(GuestAgent):
    """qemu-ga in one running libvirt domain."""

    kind: ClassVar[str] = "qemu-ga"

    def __init__(self, libvirt: ModuleType, domain: Any, vm_name: str) -> None:
        self._libvirt = libvirt
        self._domain = domain
        self.vm_name = vm_name

    # -- plumbing ------------------------------------------------------------------------------
    def _error(self, exc: Exception, what: str) -> Exception:
        mapped = connection.map_error(exc, what, self.vm_name)
        if "has not been found" in str(exc) or "is disabled" in str(exc):  # qemu-ga: CommandNotFound/Disabled
            return Unsupported(f"the guest agent of {self.vm_name!r} cannot {what}: {exc}", backend=BACKEND)
        return mapped

    def command(self, execute: str, arguments: dict[str, Any] | None = None, *, timeout: float = 10.0) -> Any:
        """Send one qemu-ga command and return its ``return`` value."""
        import libvirt_qemu

        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        try:
            reply = libvirt_qemu.qemuAgentCommand(self._domain, json.dumps(request), max(1, int(timeout)), 0)
        except self._libvirt.libvirtError as exc:
            raise self._error(exc, f"run {execute} in") from exc
        try:
            return json.loads(reply)["return"]
        except (ValueError, KeyError, TypeError) as exc:
            raise OperationFailed(f"the guest agent of {self.vm_name!r} sent {reply[:200]!r} to {execute}",
                                  backend=BACKEND) from exc

    def _libvirt_call(self, what: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except self._libvirt.libvirtError as exc:
            raise self._error(exc, what) from exc

    # -- the contract ----------------------------------------------------------------------------
    def ping(self, timeout: float = 5.0) -> None:
        self.command("guest-ping", timeout=timeout)

    def info(self) -> GuestInfo:
        reply = self.command("guest-info")
        commands = tuple(c["name"] for c in reply.get("supported_commands", []) if c.get("enabled", True))
        return GuestInfo(agent=self.kind, version=str(reply.get("version", "")), commands=commands)

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        if not argv:
            raise ValueError("exec needs a command")
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode("ascii")
        pid = self.command("guest-exec", arguments)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() >= deadline:
                raise OperationTimeout(
                    f"{argv[0]} (pid {pid}) did not finish within {timeout:.0f} s in {self.vm_name!r}",
                    fix="give it longer, or check what it waits for in the guest", backend=BACKEND,
                )
            time.sleep(EXEC_POLL)
        code = status.get("exitcode")
        if code is None:  # killed by a signal
            code = 128 + int(status.get("signal", 0))
        return ExecResult(
            exit_code=int(code),
            stdout=base64.b64decode(status.get("out-data", "")),
            stderr=base64.b64decode(status.get("err-data", "")),
        )

    def read_file(self, path: str, *, limit: int = 16 * 1024 * 1024) -> bytes:
        handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        data = b""
        try:
            while True:
                chunk = self.command("guest-file-read", {"handle": handle, "count": READ_CHUNK}, timeout=FILE_TIMEOUT)
                data += base64.b64decode(chunk.get("buf-b64", ""))
                if len(data) > limit:
                    raise OperationFailed(f"{path} in {self.vm_name!r} is larger than {limit} bytes", backend=BACKEND)
                if chunk.get("eof") or not chunk.get("count"):
                    return data
        finally:
            self.command("guest-file-close", {"handle": handle})

    def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        handle = self.command("guest-file-open", {"path": path, "mode": "w"})
        try:
            for start in range(0, len(data), WRITE_CHUNK):
                piece = base64.b64encode(data[start : start + WRITE_CHUNK]).decode("ascii")
                self.command("guest-file-write", {"handle": handle, "buf-b64": piece}, timeout=FILE_TIMEOUT)
            self.command("guest-file-flush", {"handle": handle}, timeout=FILE_TIMEOUT)
        finally:
            self.command("guest-file-close", {"handle": handle})
        if mode is not None:
            self.check_shell(f"chmod {mode:o} '{path}'")

    def fsfreeze(self) -> int:
        return int(self._libvirt_call("freeze the filesystems of", self._domain.fsFreeze))

    def fsthaw(self) -> int:
        return int(self._libvirt_call("thaw the filesystems of", self._domain.fsThaw))

    def shutdown(self) -> None:
        flag = self._libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT
        self._libvirt_call("shut down through the guest agent", self._domain.shutdownFlags, flag)

    def set_time(self, epoch_ns: int | None = None) -> None:
        now = time.time_ns() if epoch_ns is None else epoch_ns
        seconds, nanos = divmod(now, 1_000_000_000)
        self._libvirt_call("set the clock of", self._domain.setTime, {"seconds": seconds, "nseconds": nanos}, 0)

    def osinfo(self) -> GuestOS:
        reply = self.command("guest-get-osinfo")
        return GuestOS(
            id=str(reply.get("id", "")),
            name=str(reply.get("pretty-name") or reply.get("name", "")),
            version=str(reply.get("version-id", "")),
            kernel=str(reply.get("kernel-release", "")),
        )

    def network_interfaces(self) -> list[GuestInterface]:
        reply = self.command("guest-network-get-interfaces")
        return [
            GuestInterface(
                name=str(item.get("name", "")),
                mac=str(item.get("hardware-address", "")),
                addresses=tuple(
                    f"{a.get('ip-address')}/{a.get('prefix')}" for a in item.get("ip-addresses", []) or []
                ),
            )
            for item in reply
        ]
