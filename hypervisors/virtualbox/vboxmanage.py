"""Running ``VBoxManage``: one call, its output, progress forwarded, failures mapped to vmlog errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from hypervisors.errors import BackendUnavailable, OperationTimeout
from hypervisors.virtualbox.diagnostics import BACKEND, map_error
from hypervisors.virtualbox.machinereadable import parse_progress

INSTALL_FIX = "install VirtualBox so that `VBoxManage` is on PATH (https://www.virtualbox.org/wiki/Downloads)"
MINIMUM_VERSION = (6, 1)
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")

ProgressCallback = Callable[[int], None]


def find_vboxmanage(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    for name in ("VBoxManage", "vboxmanage"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BackendUnavailable("VBoxManage is not installed", fix=INSTALL_FIX, backend=BACKEND)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``7.0.20r163906`` (also ``7.0.20_Debianr163906``) to (7, 0, 20)."""
    match = _VERSION_RE.match(text.strip())
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


class VBoxManage:
    """A VBoxManage binary; ``run`` raises mapped errors, ``run_raw`` returns whatever happened."""

    def __init__(self, path: Path, timeout: float = 600.0) -> None:
        self.path = path
        self.timeout = timeout

    def run_raw(self, args: list[str], progress: ProgressCallback | None = None) -> tuple[int, str, str]:
        env = {**os.environ, "LC_ALL": "C", "VBOX_LOG_DEST": "nofile"}
        try:
            proc = subprocess.Popen(
                [str(self.path), "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )
        except OSError as exc:
            raise BackendUnavailable(f"cannot run {self.path}: {exc}", fix=INSTALL_FIX, backend=BACKEND) from exc
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise OperationTimeout(
                f"VBoxManage {args[0]} did not finish within {self.timeout:.0f} s", backend=BACKEND
            ) from exc
        if progress is not None:
            for percent in parse_progress(stderr):
                progress(percent)
        return proc.returncode, stdout, stderr

    def run_bytes(self, args: list[str], timeout: float | None = None) -> tuple[int, bytes, bytes]:
        """Run and return the raw output: a guest command's stdout and stderr are bytes, not text."""
        env = {**os.environ, "LC_ALL": "C", "VBOX_LOG_DEST": "nofile"}
        limit = self.timeout if timeout is None else timeout
        try:
            proc = subprocess.run([str(self.path), "-q", *args], capture_output=True, env=env, timeout=limit,
                                  check=False)
        except OSError as exc:
            raise BackendUnavailable(f"cannot run {self.path}: {exc}", fix=INSTALL_FIX, backend=BACKEND) from exc
        except subprocess.TimeoutExpired as exc:
            raise OperationTimeout(f"VBoxManage {args[0]} did not finish within {limit:.0f} s",
                                   backend=BACKEND) from exc
        return proc.returncode, proc.stdout, proc.stderr

    def run(self, args: list[str], progress: ProgressCallback | None = None) -> str:
        code, stdout, stderr = self.run_raw(args, progress)
        if code != 0:
            raise map_error(" ".join(args[:2]), stderr + stdout, code)
        return stdout

    def version(self) -> str:
        code, stdout, stderr = self.run_raw(["--version"])
        if code != 0 or not stdout.strip():
            raise map_error("report its version", stderr, code)
        return stdout.strip().splitlines()[-1]
