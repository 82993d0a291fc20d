"""Thin, explicit wrapper over ``qemu-img``: formats are always given, never probed.

Backends and vmlog's layer store use it to create overlays, convert between qcow2/vmdk/vdi/raw,
compare and check images. Untrusted images are handled with ``limits=True`` (CPU and address
space caps, as OpenStack does) and without following backing chains.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from hypervisors.errors import BackendUnavailable, OperationFailed

# What OpenStack allows qemu-img on an untrusted image: 1 GiB of address space, 30 s of CPU.
UNTRUSTED_ADDRESS_SPACE = 1 << 30
UNTRUSTED_CPU_SECONDS = 30

DEFAULT_CLUSTER_SIZE = 65536


def binary() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        raise BackendUnavailable(
            "qemu-img is not installed", fix="apt-get install qemu-utils (or your system's qemu package)"
        )
    return path


def version() -> str:
    out = subprocess.run([binary(), "--version"], capture_output=True, text=True, check=False,
                         preexec_fn=die_with_parent).stdout
    return out.splitlines()[0].removeprefix("qemu-img version ").split()[0] if out else "unknown"


_PR_SET_PDEATHSIG = 1
_forking_pid = [os.getpid()]  # the process about to fork, written just before each fork (see below)


def _remember_forking_pid() -> None:
    _forking_pid[0] = os.getpid()


os.register_at_fork(before=_remember_forking_pid)  # runs before a subprocess with a preexec_fn forks


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed parent
        return None


_prctl = _load_prctl()  # loaded here, not in the child: the child's window before prctl stays short


def die_with_parent() -> None:
    """In a child before exec: the kernel sends SIGKILL when the process that started it dies (even by kill -9).

    A parent killed between the fork and the prctl would be missed, so the child then checks that its parent is
    still the process that forked it, and ends itself if not.
    """
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != _forking_pid[0]:
        os.kill(os.getpid(), signal.SIGKILL)


def _limit_resources() -> None:
    die_with_parent()
    resource.setrlimit(resource.RLIMIT_AS, (UNTRUSTED_ADDRESS_SPACE, UNTRUSTED_ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CPU, (UNTRUSTED_CPU_SECONDS, UNTRUSTED_CPU_SECONDS))


def image_opts(path: Path, fmt: str) -> str:
    """``--image-opts`` text that opens exactly ``path`` with the file protocol, in ``fmt``, without any backing.

    The empty ``backing`` (qemu's "no backing file") keeps a name inside the image from opening another file.
    """
    escaped = str(Path(path).absolute()).replace(",", ",,")
    return f"driver={fmt},file.driver=file,file.filename={escaped},backing="


def run(args: list[str], *, limits: bool = False, cwd: Path | None = None) -> str:
    """Run ``qemu-img ARGS``; raise ``OperationFailed`` with its stderr on failure."""
    cmd = [binary(), *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        preexec_fn=_limit_resources if limits else die_with_parent,
        env={**os.environ, "LC_ALL": "C"},
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit code {proc.returncode}"
        raise OperationFailed(f"qemu-img {args[0]} failed: {detail}")
    return proc.stdout


def info(path: Path, fmt: str, *, limits: bool = False) -> dict[str, Any]:
    """``qemu-img info`` of one image (no backing chain walk), format given explicitly."""
    out = run(["info", "--output=json", "-f", fmt, str(path)], limits=limits)
    return json.loads(out)


def isolated_info(path: Path, fmt: str) -> dict[str, Any]:
    """``qemu-img info`` of an untrusted image: only this file is opened, under resource limits."""
    out = run(["info", "--output=json", "--image-opts", image_opts(path, fmt)], limits=True)
    return json.loads(out)


def create(path: Path, fmt: str, size: int | str, *, cluster_size: int | None = None) -> Path:
    args = ["create", "-q", "-f", fmt]
    if cluster_size and fmt == "qcow2":
        args += ["-o", f"cluster_size={cluster_size}"]
    run([*args, str(path), str(size)])
    return path


def create_overlay(
    path: Path, backing: Path, backing_format: str, *, cluster_size: int = DEFAULT_CLUSTER_SIZE
) -> Path:
    """Create a qcow2 overlay on ``backing``, naming it relative to the overlay's directory.

    A relative backing name keeps a store relocatable; the backing format is always recorded so
    qemu never probes it.
    """
    path = Path(path)
    backing = Path(backing)
    rel = os.path.relpath(backing.resolve(), path.parent.resolve())
    run(
        [
            "create", "-q", "-f", "qcow2",
            "-o", f"cluster_size={cluster_size}",
            "-b", rel, "-F", backing_format,
            str(path),
        ],
        cwd=path.parent,
    )
    return path


def convert(
    src: Path,
    dest: Path,
    *,
    src_format: str,
    dest_format: str,
    backing: Path | None = None,
    backing_format: str | None = None,
    compress: bool = False,
    options: dict[str, str] | None = None,
    limits: bool = False,
    isolated: bool = False,
) -> Path:
    """``qemu-img convert``; with ``backing`` the output holds only what differs from it (``-B``).

    ``isolated`` opens ``src`` through :func:`image_opts`: this file only, no backing.
    """
    args = ["convert", "-q"] + ([] if isolated else ["-f", src_format]) + ["-O", dest_format]
    if compress:
        args.append("-c")
    opts = dict(options or {})
    if backing is not None:
        args += ["-B", str(backing), "-F", backing_format or "qcow2"]
    if opts:
        args += ["-o", ",".join(f"{k}={v}" for k, v in opts.items())]
    if isolated:
        run([*args, "--image-opts", image_opts(src, src_format), str(dest)], limits=limits)
    else:
        run([*args, str(src), str(dest)], limits=limits)
    return dest


def compare(a: Path, a_format: str, b: Path, b_format: str) -> bool:
    """True if both images show the guest the same bytes (``qemu-img compare``)."""
    proc = subprocess.run(
        [binary(), "compare", "-q", "-f", a_format, "-F", b_format, str(a), str(b)],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=die_with_parent,
    )
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise OperationFailed(f"qemu-img compare failed: {proc.stderr.strip()}")


def check(path: Path, fmt: str) -> None:
    """Raise ``OperationFailed`` if ``qemu-img check`` finds corruption or leaks."""
    run(["check", "-q", "-f", fmt, str(path)])


def rebase_unsafe(path: Path, backing: Path, backing_format: str) -> None:
    """Re-point an overlay at ``backing`` (relative name) without touching its data."""
    rel = os.path.relpath(Path(backing).resolve(), Path(path).parent.resolve())
    run(["rebase", "-u", "-f", "qcow2", "-b", rel, "-F", backing_format, str(path)], cwd=Path(path).parent)


def commit(path: Path, fmt: str = "qcow2") -> None:
    """Merge an overlay into its backing file."""
    run(["commit", "-q", "-f", fmt, str(path)])


def top_has_data(path: Path, fmt: str) -> bool:
    """True if the top image ``path`` holds data of its own, not only its backing chain's (unreadable: True).

    Asked of differencing disks to tell a state with unsaved work from one without; ``-U`` reads an
    image a running VM holds open.
    """
    try:
        out = run(["map", "--output=json", "-U", "-f", fmt, str(path)])
    except (BackendUnavailable, OperationFailed):
        return True
    return any(entry.get("depth") == 0 and entry.get("data") for entry in json.loads(out))
