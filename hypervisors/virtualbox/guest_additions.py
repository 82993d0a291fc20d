"""VirtualBox Guest Additions as a :class:`~hypervisors.guest.GuestAgent`, through ``VBoxManage``.

What the additions publish needs no login: the run level (``showvminfo --machinereadable``
``GuestAdditionsRunLevel``: 0 none, 1 system, 2 userland, 3 desktop) and the guest properties under
``/VirtualBox/GuestAdd/`` and ``/VirtualBox/GuestInfo/`` (``guestproperty get`` prints ``Value: <v>`` or
``No value set!``). Running commands and copying files (``guestcontrol run``, ``copyfrom``, ``copyto``) logs in
as a guest user with a password, which the backend is given (``guest_user``/``guest_password``): vmlog's
contextualisation makes users with an SSH key and a locked password, so it has none to offer.

``guestcontrol run`` does not exit with the guest program's code: VBoxManage keeps 0..32 for itself and maps
a guest code 1..93 to 33..125 and anything above to 126 (``gctlRunCalculateExitCode`` in
VBoxManageGuestCtrl.cpp); :func:`guest_exit_code` maps back. The additions cannot freeze filesystems, so a
live save of a VirtualBox VM is crash-consistent (:meth:`GuestAdditions.fsfreeze` says so).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from hypervisors.errors import HypervisorError, InvalidState, OperationFailed, OperationTimeout, Unsupported
from hypervisors.guest import ExecResult, GuestAgent, GuestInfo, GuestInterface, GuestOS
from hypervisors.virtualbox.diagnostics import BACKEND, error_lines, map_error
from hypervisors.virtualbox.machinereadable import parse_info
from hypervisors.virtualbox.vboxmanage import VBoxManage

NO_VALUE = "No value set!"
GUEST_ADD = "/VirtualBox/GuestAdd/"
GUEST_INFO = "/VirtualBox/GuestInfo/"
# VBoxManageGuestCtrl.cpp EXITCODEEXEC_*: frozen since 4.1 / 5.0
MAPPED_FIRST, MAPPED_LAST, MAPPED_BIG = 33, 125, 126
EXIT_TERM_SIGNAL, EXIT_TERM_ABEND, EXIT_TIMEOUT = 18, 19, 20
ADDITIONS_FIX = ("install the Guest Additions in the guest (Debian/Ubuntu: the virtualbox-guest-utils package, or"
                 " VirtualBox's Guest Additions ISO) and wait until they have started")
LOGIN_FIX = "give the backend a guest user and password that can log in (guest_user=, guest_password=)"


def guest_exit_code(vboxmanage_code: int) -> int | None:
    """The guest program's exit code behind ``guestcontrol run``'s, or None where VBoxManage itself failed.

    Codes 94 and up all arrive as 126, so 126 means "94 or more"; a program killed by a signal arrives as 18
    without the signal's number, reported here as 128 (the shell's "killed by a signal" range).
    """
    if vboxmanage_code == 0:
        return 0
    if MAPPED_FIRST <= vboxmanage_code <= MAPPED_LAST:
        return vboxmanage_code - MAPPED_FIRST + 1
    if vboxmanage_code == MAPPED_BIG:
        return MAPPED_BIG
    if vboxmanage_code in (EXIT_TERM_SIGNAL, EXIT_TERM_ABEND):
        return 128
    return None


def parse_property(output: str) -> str | None:
    """The value of a ``guestproperty get`` output, None for ``No value set!``."""
    for line in output.splitlines():
        if line.startswith("Value: "):
            return line[len("Value: ") :]
        if line.strip() == NO_VALUE:
            return None
    return None


def mac_text(raw: str) -> str:
    """``080027A1B2C3`` (as the additions publish it) to ``08:00:27:a1:b2:c3``."""
    raw = raw.replace(":", "").lower()
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2)) if len(raw) == 12 else raw


class GuestAdditions(GuestAgent):
    """The Guest Additions of one VirtualBox VM."""

    kind: ClassVar[str] = "guest-additions"
    runs_as_root: ClassVar[bool] = False  # as the guest user it logged in as

    def __init__(self, tool: VBoxManage, vm_name: str, *, username: str | None = None,
                 password: str | None = None) -> None:
        self.tool = tool
        self.vm_name = vm_name
        self.username = username
        self.password = password

    # -- what the additions publish ------------------------------------------------------------
    def property(self, name: str) -> str | None:
        """One guest property (``guestproperty get``), None when it has no value."""
        return parse_property(self.tool.run(["guestproperty", "get", self.vm_name, name]))

    def wait_property(self, pattern: str, timeout: float) -> bool:
        """Wait until a property matching ``pattern`` changes (``guestproperty wait``); False on timeout."""
        code, stdout, _stderr = self.tool.run_raw(
            ["guestproperty", "wait", self.vm_name, pattern, "--timeout", str(int(timeout * 1000)),
             "--fail-on-timeout"])
        return code == 0 and stdout.startswith("Name: ")

    def run_level(self) -> int:
        """``GuestAdditionsRunLevel`` of the running VM (0: no additions running); ``InvalidState`` if it is off."""
        info = parse_info(self.tool.run(["showvminfo", self.vm_name, "--machinereadable"]))
        if info.get("VMState") != "running":
            raise InvalidState(f"VM {self.vm_name!r} is not running ({info.get('VMState', 'unknown')}), so its"
                               " Guest Additions cannot answer", fix="start the VM first", backend=BACKEND)
        try:
            return int(info.get("GuestAdditionsRunLevel", "0"))
        except ValueError:
            return 0

    def ping(self, timeout: float = 5.0) -> None:
        del timeout  # one quick VBoxManage call
        if self.run_level() < 1:
            raise OperationFailed(f"the Guest Additions of VM {self.vm_name!r} are not running (run level 0)",
                                  fix=ADDITIONS_FIX, backend=BACKEND)

    def wait_ready(self, timeout: float) -> None:
        """Ping until the additions run; between tries wait for them to publish their version."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ping()
                return
            except HypervisorError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                started = time.monotonic()
                self.wait_property(GUEST_ADD + "*", min(remaining, 5.0))
                time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))

    def info(self) -> GuestInfo:
        version = self.property(GUEST_ADD + "Version")
        if version is None:
            self.ping()
            raise OperationFailed(f"the Guest Additions of VM {self.vm_name!r} publish no version",
                                  fix=ADDITIONS_FIX, backend=BACKEND)
        revision = self.property(GUEST_ADD + "Revision")
        return GuestInfo(agent=self.kind, version=f"{version} r{revision}" if revision else version)

    def osinfo(self) -> GuestOS:
        product = self.property(GUEST_INFO + "OS/Product")
        if product is None:
            self.ping()
            raise OperationFailed(f"the Guest Additions of VM {self.vm_name!r} publish no operating system",
                                  fix=ADDITIONS_FIX, backend=BACKEND)
        return GuestOS(id=product.lower(), name=product, version=self.property(GUEST_INFO + "OS/Version") or "",
                       kernel=self.property(GUEST_INFO + "OS/Release") or "")

    def network_interfaces(self) -> list[GuestInterface]:
        count = self.property(GUEST_INFO + "Net/Count")
        if count is None:
            self.ping()
            return []
        interfaces = []
        for index in range(int(count)):
            net = f"{GUEST_INFO}Net/{index}/"
            ip = self.property(net + "V4/IP")
            mask = self.property(net + "V4/Netmask") or "255.255.255.255"
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
            interfaces.append(GuestInterface(name=self.property(net + "Name") or f"net{index}",
                                             mac=mac_text(self.property(net + "MAC") or ""),
                                             addresses=(f"{ip}/{prefix}",) if ip else ()))
        return interfaces

    def logged_in_users(self) -> list[str]:
        """Who is logged in to the guest (``/VirtualBox/GuestInfo/OS/LoggedInUsersList``)."""
        users = self.property(GUEST_INFO + "OS/LoggedInUsersList")
        return [u for u in (users or "").split(",") if u]

    # -- guest control (needs a login) ---------------------------------------------------------
    @contextmanager
    def _login(self, what: str) -> Iterator[list[str]]:
        """The ``--username``/``--passwordfile`` options; the password goes in a 0600 file, not on the command line."""
        if not self.username or self.password is None:
            raise Unsupported(f"cannot {what} VM {self.vm_name!r}: Guest Additions run commands only as a guest"
                              " user with a password, and none was given", fix=LOGIN_FIX, backend=BACKEND)
        fd, name = tempfile.mkstemp(prefix="vmlog-vbox-")
        try:
            os.write(fd, self.password.encode() + b"\n")
            os.close(fd)
            yield ["--username", self.username, "--passwordfile", name]
        finally:
            Path(name).unlink(missing_ok=True)

    def _failure(self, what: str, stderr: str, code: int) -> HypervisorError:
        lines, _result = error_lines(stderr)
        text = " ".join(lines) or stderr.strip() or f"exit code {code}"
        if "is not running (currently" in text:
            return InvalidState(f"cannot {what} VM {self.vm_name!r}: {text}", fix="start the VM first",
                                backend=BACKEND)
        if "execution service is not ready" in text:
            return OperationFailed(f"cannot {what} VM {self.vm_name!r}: its Guest Additions do not answer ({text})",
                                   fix=ADDITIONS_FIX, backend=BACKEND)
        if "not able to logon" in text or "can't be used to logon" in text:
            return OperationFailed(f"cannot {what} VM {self.vm_name!r}: {text}", fix=LOGIN_FIX, backend=BACKEND)
        return map_error(f"{what} {self.vm_name}", stderr, code)

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        if not argv:
            raise ValueError("exec needs a command")
        if stdin is not None:  # guestcontrol run reads no stdin: feed it from a file in the guest
            staged = f"/tmp/vmlog-stdin-{secrets.token_hex(6)}"
            self.write_file(staged, stdin)
            script = f'f={shlex.quote(staged)}; "$0" "$@" < "$f"; c=$?; rm -f "$f"; exit $c'
            return self.exec(["/bin/sh", "-c", script, *argv], timeout=timeout)
        with self._login("run a command in") as login:
            code, out, err = self.tool.run_bytes(
                ["guestcontrol", self.vm_name, "run", *login, "--exe", argv[0], "--timeout",
                 str(int(timeout * 1000)), "--wait-stdout", "--wait-stderr", "--", *argv], timeout=timeout + 30)
        guest_code = guest_exit_code(code)
        stderr_text = err.decode("utf-8", "replace")
        if code == EXIT_TIMEOUT:
            raise OperationTimeout(f"{argv[0]} did not finish within {timeout:.0f} s in {self.vm_name!r}",
                                   fix="give it longer, or check what it waits for in the guest", backend=BACKEND)
        if guest_code is None or (code == 1 and "VBoxManage: error:" in stderr_text):
            raise self._failure("run a command in", stderr_text, code)
        return ExecResult(exit_code=guest_code, stdout=out, stderr=err)

    def read_file(self, path: str, *, limit: int = 16 * 1024 * 1024) -> bytes:
        with tempfile.TemporaryDirectory(prefix="vmlog-vbox-") as host_dir:
            target = Path(host_dir) / "copy"
            with self._login("read a file of") as login:
                code, _out, err = self.tool.run_bytes(["guestcontrol", self.vm_name, "copyfrom", *login, path,
                                                       str(target)])
            if code != 0:
                raise self._failure(f"read {path} of", err.decode("utf-8", "replace"), code)
            if target.stat().st_size > limit:
                raise OperationFailed(f"{path} in {self.vm_name!r} is larger than {limit} bytes", backend=BACKEND)
            return target.read_bytes()

    def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="vmlog-vbox-") as host_dir:
            source = Path(host_dir) / Path(path).name
            source.write_bytes(data)
            with self._login("write a file in") as login:
                code, _out, err = self.tool.run_bytes(["guestcontrol", self.vm_name, "copyto", *login, str(source),
                                                       path])
            if code != 0:
                raise self._failure(f"write {path} in", err.decode("utf-8", "replace"), code)
        if mode is not None:
            self.check_shell(f"chmod {mode:o} {shlex.quote(path)}")

    # -- what the additions cannot do, and the power button --------------------------------------
    def fsfreeze(self) -> int:
        raise Unsupported(
            f"VirtualBox Guest Additions cannot freeze the filesystems of {self.vm_name!r}: a live save of it is"
            " crash-consistent only", fix="shut the VM down (or suspend it) before saving for a consistent state",
            backend=BACKEND)

    def fsthaw(self) -> int:
        raise Unsupported("VirtualBox Guest Additions freeze no filesystems, so there is nothing to thaw",
                          backend=BACKEND)

    def set_time(self, epoch_ns: int | None = None) -> None:
        raise Unsupported("VirtualBox Guest Additions set the guest clock themselves (VBoxService's time"
                          " synchronisation) after a resume", backend=BACKEND)

    def shutdown(self) -> None:
        """The ACPI power button (``controlvm acpipowerbutton``): the additions have no shutdown of their own."""
        self.tool.run(["controlvm", self.vm_name, "acpipowerbutton"])
