"""The guest channel contract: what vmlog asks of the agent that runs inside a guest.

Real appliances speak their platform's standard agent (the QEMU guest agent under libvirt, Guest
Additions under VirtualBox, VMware Tools under VMware); vmlog's tiny test appliance speaks vmlog's
own serial line protocol. Each is one :class:`GuestAgent`, so readiness, releases and quiesced
saves ask the guest the same way whichever agent answers. An operation the agent cannot do raises
:class:`~hypervisors.errors.Unsupported`; an agent that does not answer raises
:class:`~hypervisors.errors.OperationTimeout`; every other failure is a
:class:`~hypervisors.errors.ReportableError` with the agent's own words.
"""

from __future__ import annotations

import base64
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from hypervisors.errors import OperationFailed, ReportableError, Unsupported

CLOUD_INIT_BOOT_FINISHED = "/var/lib/cloud/instance/boot-finished"


@dataclass(frozen=True)
class ExecResult:
    """A finished guest command: its exit code and what it wrote."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def output(self) -> str:
        """stdout then stderr, as text (what a user would have seen on a terminal)."""
        return (self.stdout + self.stderr).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class GuestInfo:
    """Which agent answered, its version, and the commands it offers (empty where it does not say)."""

    agent: str
    version: str
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuestOS:
    """The guest's operating system as its agent reports it."""

    id: str = ""
    name: str = ""
    version: str = ""
    kernel: str = ""


@dataclass(frozen=True)
class GuestInterface:
    """One network interface inside the guest with its addresses (``addr/prefix``)."""

    name: str
    mac: str = ""
    addresses: tuple[str, ...] = field(default=())


class GuestAgent(ABC):
    """A channel to the agent in one running guest. Cheap to make; ``close`` releases what it holds."""

    kind: ClassVar[str] = "agent"  # e.g. "qemu-ga", "vmlog-serial", "guest-additions", "vmware-tools"
    # Whether commands run as root; Guest Additions and VMware Tools run them as the guest user they logged in as,
    # so a caller that needs root (a mount, the clock) prefixes ``sudo -n`` there.
    runs_as_root: ClassVar[bool] = True

    @abstractmethod
    def ping(self, timeout: float = 5.0) -> None:
        """Return once the agent answered; ``OperationTimeout`` (or another error) if it does not."""

    @abstractmethod
    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        """Run ``argv`` in the guest (as the agent's user: root for qemu-ga, see :attr:`runs_as_root`) and wait."""

    def shell(self, command: str, *, timeout: float = 60.0) -> ExecResult:
        """Run ``sh -c command`` in the guest."""
        return self.exec(["/bin/sh", "-c", command], timeout=timeout)

    def check_shell(self, command: str, *, timeout: float = 60.0) -> str:
        """:meth:`shell`, raising ``OperationFailed`` with the command's output if it exits non-zero."""
        result = self.shell(command, timeout=timeout)
        if result.exit_code != 0:
            raise OperationFailed(
                f"{command!r} exited {result.exit_code} in the guest: {result.output.strip()[-2000:]}",
                fix="see the command's output",
            )
        return result.output

    def wait_ready(self, timeout: float) -> None:
        """Ping until the agent answers or ``timeout`` seconds have passed (then the last error)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ping(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
                return
            except Unsupported:
                raise
            except ReportableError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def info(self) -> GuestInfo:
        return GuestInfo(agent=self.kind, version="")

    def read_file(self, path: str, *, limit: int = 16 * 1024 * 1024) -> bytes:
        """The content of ``path`` in the guest (through ``base64`` in the guest unless the agent has better)."""
        result = self.exec(["/bin/sh", "-c", f"base64 < {shlex.quote(path)}"])
        if result.exit_code != 0:
            raise OperationFailed(f"cannot read {path} in the guest: {result.output.strip()[-500:]}")
        data = base64.b64decode(result.stdout)
        if len(data) > limit:
            raise OperationFailed(f"{path} in the guest is larger than {limit} bytes")
        return data

    def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        """Write ``data`` to ``path`` in the guest, replacing it."""
        encoded = base64.b64encode(data).decode("ascii")
        command = f"printf %s {shlex.quote(encoded)} | base64 -d > {shlex.quote(path)}"
        if mode is not None:
            command += f" && chmod {mode:o} {shlex.quote(path)}"
        self.check_shell(command)

    def fsfreeze(self) -> int:
        """Flush and freeze the guest's filesystems; the number frozen. Always pair with :meth:`fsthaw`."""
        raise Unsupported(f"the {self.kind} guest agent cannot freeze the guest's filesystems")

    def fsthaw(self) -> int:
        """Thaw what :meth:`fsfreeze` froze; the number thawed (0 if nothing was frozen)."""
        raise Unsupported(f"the {self.kind} guest agent cannot thaw the guest's filesystems")

    def shutdown(self) -> None:
        """Ask the guest to power off cleanly; returns without waiting for it to be off."""
        raise Unsupported(f"the {self.kind} guest agent cannot shut the guest down")

    def set_time(self, epoch_ns: int | None = None) -> None:
        """Set the guest clock to ``epoch_ns`` (default: the host's clock now), e.g. after a resume."""
        raise Unsupported(f"the {self.kind} guest agent cannot set the guest clock")

    def osinfo(self) -> GuestOS:
        raise Unsupported(f"the {self.kind} guest agent does not report the guest's operating system")

    def network_interfaces(self) -> list[GuestInterface]:
        raise Unsupported(f"the {self.kind} guest agent does not report the guest's network interfaces")

    def close(self) -> None:  # noqa: B027 - most agents hold nothing to release
        """Release the channel (idempotent); the guest keeps running."""

    def __enter__(self) -> GuestAgent:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
