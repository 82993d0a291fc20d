"""VMware Tools as a :class:`~hypervisors.guest.GuestAgent`, through ``vmrun``'s Guest OS commands.

``checkToolsState`` (``running``, ``installed``, ``unknown``) and ``getGuestIPAddress`` need no login; running
a program and moving files do (``vmrun -gu USER -gp PASS ...``), as a guest user with a password the backend
is given (``guest_user``/``guest_password``): vmlog's contextualisation gives its users SSH keys and locked
passwords. vmrun has no way to pass the password but its command line.

``runProgramInGuest`` returns neither the program's output nor, on success, anything else; a failing program
makes vmrun print ``Error: Guest program exited with non-zero exit code: N`` and exit 255. So a command runs
as ``/bin/sh -c 'argv > OUT 2> ERR'`` with ``OUT``/``ERR`` made by ``createTempfileInGuest``, read back with
``copyFileFromGuestToHost`` and removed with ``deleteFileInGuest``. vmrun joins the program's arguments into
one command line that a guest shell parses (Linux guests), so the script travels shell-quoted.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from hypervisors.errors import HypervisorError, InvalidState, OperationFailed, OperationTimeout, Unsupported
from hypervisors.guest import ExecResult, GuestAgent, GuestInfo, GuestInterface, GuestOS
from hypervisors.vmware.vmrun import BACKEND, Vmrun, map_error

NONZERO = re.compile(r"Guest program exited with non-zero exit code: (-?\d+)")
TOOLS_FIX = ("install VMware Tools in the guest (Linux: the open-vm-tools package) and wait until vmtoolsd runs"
             " (`vmrun checkToolsState` says running)")
LOGIN_FIX = "give the backend a guest user and password that can log in (guest_user=, guest_password=)"
OSINFO_SCRIPT = '. /etc/os-release 2>/dev/null; printf "%s\\n%s\\n%s\\n" "$ID" "$PRETTY_NAME" "$VERSION_ID"; uname -r'


def guest_exit_code(output: str) -> int | None:
    """The guest program's exit code from vmrun's ``Guest program exited with non-zero exit code: N``."""
    match = NONZERO.search(output)
    return int(match.group(1)) if match else None


class VMwareTools(GuestAgent):
    """VMware Tools in one VMware VM (its ``.vmx``)."""

    kind: ClassVar[str] = "vmware-tools"
    runs_as_root: ClassVar[bool] = False  # as the guest user it logged in as

    def __init__(self, tool: Vmrun, vmx: Path, *, username: str | None = None, password: str | None = None) -> None:
        self.tool = tool
        self.vmx = Path(vmx)
        self.username = username
        self.password = password

    @property
    def vm_name(self) -> str:
        return self.vmx.stem

    # -- plumbing ------------------------------------------------------------------------------
    def _failure(self, what: str, output: str, code: int) -> HypervisorError:
        text = " ".join(line[len("Error: "):] for line in output.splitlines() if line.startswith("Error: "))
        text = text or output.strip() or f"exit code {code}"
        if "VMware Tools are not running" in text:
            return OperationFailed(f"cannot {what} VM {self.vm_name!r}: {text}", fix=TOOLS_FIX, backend=BACKEND)
        if "Invalid user name or password" in text:
            return OperationFailed(f"cannot {what} VM {self.vm_name!r}: {text}", fix=LOGIN_FIX, backend=BACKEND)
        if "not powered on" in text:
            return InvalidState(f"cannot {what} VM {self.vm_name!r}: {text}", fix="start the VM first",
                                backend=BACKEND)
        return map_error(what, output, code)

    def _guest(self, what: str, command: str, *args: str, timeout: float | None = None) -> str:
        """One logged-in Guest OS command; its output, or the mapped error."""
        if not self.username or self.password is None:
            raise Unsupported(f"cannot {what} VM {self.vm_name!r}: VMware Tools run programs only as a guest user"
                              " with a password, and none was given", fix=LOGIN_FIX, backend=BACKEND)
        code, output = self.tool.run_raw(["-gu", self.username, "-gp", self.password, command, str(self.vmx),
                                          *args], timeout=timeout)
        if code != 0 or output.startswith("Error: "):
            raise self._failure(what, output, code)
        return output

    def tools_state(self) -> str:
        """``running``, ``installed`` or ``unknown`` (``vmrun checkToolsState``)."""
        code, output = self.tool.run_raw(["checkToolsState", str(self.vmx)])
        if code != 0:
            raise self._failure("ask VMware Tools of", output, code)
        return output.strip().splitlines()[-1] if output.strip() else "unknown"

    # -- the contract ----------------------------------------------------------------------------
    def ping(self, timeout: float = 5.0) -> None:
        del timeout  # one quick vmrun call
        state = self.tools_state()
        if state == "unknown" and self.vmx.resolve() not in {p.resolve() for p in self.tool.running()}:
            raise InvalidState(f"VM {self.vm_name!r} is not running, so its VMware Tools cannot answer",
                               fix="start the VM first", backend=BACKEND)
        if state != "running":
            raise OperationFailed(f"VMware Tools are not running in VM {self.vm_name!r} (checkToolsState: {state})",
                                  fix=TOOLS_FIX, backend=BACKEND)

    def info(self) -> GuestInfo:
        self.ping()
        return GuestInfo(agent=self.kind, version="")  # vmrun does not say which version of the Tools runs

    @contextmanager
    def _guest_temp(self, count: int) -> Iterator[list[str]]:
        """``count`` temporary files in the guest for one command's streams, deleted afterwards whatever happens."""
        made: list[str] = []
        try:
            for _ in range(count):
                made.append(self._guest("make a temporary file in", "createTempfileInGuest").strip().splitlines()[-1])
            yield made
        finally:
            for path in made:
                try:
                    self._guest("delete a temporary file in", "deleteFileInGuest", path)
                except HypervisorError:
                    pass

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        if not argv:
            raise ValueError("exec needs a command")
        with self._guest_temp(2 if stdin is None else 3) as paths:
            script = shlex.join(argv) + f" > {shlex.quote(paths[0])} 2> {shlex.quote(paths[1])}"
            if stdin is not None:
                self._put(paths[2], stdin)
                script += f" < {shlex.quote(paths[2])}"
            code = self._run_script(script, timeout)
            return ExecResult(exit_code=code, stdout=self._get(paths[0]), stderr=self._get(paths[1]))

    def _run_script(self, script: str, timeout: float) -> int:
        try:
            self._guest("run a command in", "runProgramInGuest", "/bin/sh", "-c", shlex.quote(script),
                        timeout=timeout)
        except OperationTimeout as exc:
            raise OperationTimeout(f"{script[:80]!r} did not finish within {timeout:.0f} s in {self.vm_name!r}",
                                   fix="give it longer, or check what it waits for in the guest",
                                   backend=BACKEND) from exc
        except OperationFailed as exc:
            code = guest_exit_code(exc.message)
            if code is None:
                raise
            return code
        return 0

    def _get(self, guest_path: str, limit: int | None = None) -> bytes:
        with tempfile.TemporaryDirectory(prefix="vmlog-vmware-") as host_dir:
            target = Path(host_dir) / "copy"
            self._guest(f"read {guest_path} of", "copyFileFromGuestToHost", guest_path, str(target))
            if limit is not None and target.stat().st_size > limit:
                raise OperationFailed(f"{guest_path} in {self.vm_name!r} is larger than {limit} bytes",
                                      backend=BACKEND)
            return target.read_bytes()

    def _put(self, guest_path: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="vmlog-vmware-") as host_dir:
            source = Path(host_dir) / "copy"
            source.write_bytes(data)
            self._guest(f"write {guest_path} in", "copyFileFromHostToGuest", str(source), guest_path)

    def read_file(self, path: str, *, limit: int = 16 * 1024 * 1024) -> bytes:
        return self._get(path, limit)

    def write_file(self, path: str, data: bytes, *, mode: int | None = None) -> None:
        self._put(path, data)
        if mode is not None:
            self.check_shell(f"chmod {mode:o} {shlex.quote(path)}")

    def file_exists(self, path: str) -> bool:
        """``fileExistsInGuest``: ``The file exists.`` or ``The file does not exist.``"""
        try:
            output = self._guest(f"look for {path} in", "fileExistsInGuest", path)
        except OperationFailed as exc:
            if "does not exist" in exc.message:
                return False
            raise
        return "The file exists." in output

    def guest_variable(self, name: str) -> str:
        """A variable the guest set (``vmrun readVariable VMX guestVar NAME``; empty if unset)."""
        code, output = self.tool.run_raw(["readVariable", str(self.vmx), "guestVar", name])
        if code != 0:
            raise self._failure("read a guest variable of", output, code)
        return output.strip()

    def ip_address(self, *, wait: bool = False, timeout: float = 60.0) -> str:
        """The guest's IP address as VMware Tools report it (``getGuestIPAddress [-wait]``)."""
        args = ["getGuestIPAddress", str(self.vmx), *(["-wait"] if wait else [])]
        code, output = self.tool.run_raw(args, timeout=timeout if wait else None)
        if code != 0 or output.startswith("Error: "):
            raise self._failure("ask the IP address of", output, code)
        return output.strip().splitlines()[-1]

    def network_interfaces(self) -> list[GuestInterface]:
        """The one address vmrun reports (the primary NIC's); vmrun names no interfaces nor prefixes: ``/32``."""
        return [GuestInterface(name="primary", addresses=(f"{self.ip_address()}/32",))]

    def osinfo(self) -> GuestOS:
        """From the guest's ``/etc/os-release`` and ``uname -r`` (vmrun has no query of its own)."""
        lines = (self.check_shell(OSINFO_SCRIPT).splitlines() + ["", "", "", ""])[:4]
        return GuestOS(id=lines[0], name=lines[1], version=lines[2], kernel=lines[3])

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ping()
                return
            except HypervisorError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1.0)

    # -- what vmrun cannot do, and the clean shutdown ---------------------------------------------
    def fsfreeze(self) -> int:
        raise Unsupported(
            f"vmrun cannot freeze the filesystems of {self.vm_name!r} (VMware Tools quiesce only vSphere"
            " snapshots): a live save of it is crash-consistent only",
            fix="shut the VM down (or suspend it) before saving for a consistent state", backend=BACKEND)

    def fsthaw(self) -> int:
        raise Unsupported("vmrun freezes no filesystems, so there is nothing to thaw", backend=BACKEND)

    def set_time(self, epoch_ns: int | None = None) -> None:
        raise Unsupported("VMware Tools set the guest clock themselves after a resume (tools.syncTime)",
                          backend=BACKEND)

    def shutdown(self) -> None:
        """``vmrun stop VMX soft``: VMware Tools shut the guest down (vmrun waits until it is off)."""
        code, output = self.tool.run_raw(["stop", str(self.vmx), "soft"])
        if code != 0:
            raise self._failure("shut down", output, code)
