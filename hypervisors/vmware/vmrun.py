"""Running ``vmrun`` (VMware's VIX command line) and mapping its ``Error: ...`` output to vmlog errors.

Reference: "Using vmrun to Control Virtual Machines" (VMware Workstation/Fusion documentation):
``vmrun [-T ws|player|fusion] <command> <.vmx> [options]``; failures print ``Error: <text>`` on
stdout with a non-zero status.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from hypervisors.errors import (
    BackendUnavailable,
    HypervisorError,
    InvalidState,
    OperationFailed,
    OperationTimeout,
    VMNotFound,
)

BACKEND = "vmware"
INSTALL_FIX = "install VMware Workstation Pro/Player (Linux, Windows) or Fusion (macOS) so that `vmrun` is on PATH"
_VERSION_RE = re.compile(r"vmrun version (\d+\.\d+\.\d+)")


def find_vmrun(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    found = shutil.which("vmrun")
    if found:
        return Path(found)
    fusion = Path("/Applications/VMware Fusion.app/Contents/Library/vmrun")
    if fusion.exists():
        return fusion
    raise BackendUnavailable("vmrun is not installed", fix=INSTALL_FIX, backend=BACKEND)


def map_error(command: str, output: str, code: int) -> HypervisorError:
    lines = [line[len("Error: "):] for line in output.splitlines() if line.startswith("Error: ")]
    message = " ".join(lines) or output.strip() or f"exit code {code}"
    what = f"vmrun {command} failed: {message}"
    lower = message.lower()
    if "cannot be found" in lower or "cannot open vm" in lower and "not exist" in lower:
        return VMNotFound(what, backend=BACKEND)
    if "not powered on" in lower or "is not running" in lower or "already running" in lower \
            or "invalid state" in lower:
        return InvalidState(what, backend=BACKEND)
    if "vmmon" in lower or "kernel module" in lower:
        return BackendUnavailable(
            what, backend=BACKEND,
            fix="build and load VMware's kernel modules: `sudo vmware-modconfig --console --install-all`")
    if "does not uniquely identify" in lower:
        return OperationFailed(what, backend=BACKEND,
                               fix="rename one of the sibling snapshots in VMware so their names differ")
    return OperationFailed(what, backend=BACKEND)


class Vmrun:
    def __init__(self, path: Path, host_type: str = "ws", timeout: float = 600.0) -> None:
        self.path = path
        self.host_type = host_type
        self.timeout = timeout

    def run_raw(self, args: list[str], timeout: float | None = None) -> tuple[int, str]:
        """Run ``vmrun -T HOST args`` (``args`` may start with the ``-gu``/``-gp`` guest login flags)."""
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.run([str(self.path), "-T", self.host_type, *args], capture_output=True, text=True,
                                  check=False, timeout=limit, env={**os.environ, "LC_ALL": "C"})
        except subprocess.TimeoutExpired as exc:
            command = next((a for a in args[::2] if not a.startswith("-")), args[0])
            raise OperationTimeout(f"vmrun {command} did not finish in {limit:.0f} s", backend=BACKEND) from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot run {self.path}: {exc}", fix=INSTALL_FIX, backend=BACKEND) from exc
        return proc.returncode, proc.stdout + proc.stderr

    def run(self, args: list[str]) -> str:
        code, output = self.run_raw(args)
        if code != 0 or output.startswith("Error: "):
            raise map_error(args[0], output, code)
        return output

    def version(self) -> str | None:
        """vmrun prints its version at the top of its usage text (``vmrun version 1.17.0 build-...``)."""
        try:
            proc = subprocess.run([str(self.path)], capture_output=True, text=True, check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = _VERSION_RE.search(proc.stdout + proc.stderr)
        return match.group(1) if match else None

    def running(self) -> list[Path]:
        """``vmrun list``: ``Total running VMs: N`` then one .vmx path a line."""
        out = self.run(["list"])
        return [Path(line.strip()) for line in out.splitlines()[1:] if line.strip()]
