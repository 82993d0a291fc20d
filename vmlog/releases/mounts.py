"""Mount and unmount releases: one lazy-filesystem process per mounted release, recorded on disk.

The CLI (and the GUI, and project restore) call :func:`mount_release`; it verifies the source and
pins the release *before* it starts the filesystem process, so a bad signature or a tampered
catalog is reported to the caller, not buried in a log. The process runs
``python -m vmlog.releases.mount SPEC`` in its own session, so it outlives the command; its record
under the runtime directory lets :func:`running_mounts` and :func:`umount` find it again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vmlog.errors import AlreadyExists, NotFound
from vmlog.fsutil import atomic_write_json, read_json
from vmlog.paths import VmlogHome, home
from vmlog.releases.errors import MountError
from vmlog.releases.model import Release, ReleaseSource
from vmlog.releases.object_cache import DEFAULT_LIMIT

MOUNT_TIMEOUT = 60.0


@dataclass(frozen=True)
class MountHandle:
    """A running mount: what is mounted, where, and the process serving it."""

    name: str
    release: Release
    source: dict[str, Any]  # the source configuration (enough to re-mount)
    mountpoint: Path
    cache_dir: Path
    cache_limit: int
    log_file: Path
    pid: int
    project: str | None = None  # the project whose VM the release is shared into (None: host only)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["release"] = self.release.to_dict()
        for key in ("mountpoint", "cache_dir", "log_file"):
            data[key] = str(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MountHandle:
        return cls(
            name=data["name"],
            release=Release.from_dict(data["release"]),
            source=data["source"],
            mountpoint=Path(data["mountpoint"]),
            cache_dir=Path(data["cache_dir"]),
            cache_limit=int(data["cache_limit"]),
            log_file=Path(data["log_file"]),
            pid=int(data["pid"]),
            project=data.get("project"),
        )

    def is_alive(self) -> bool:
        return _pid_alive(self.pid) and os.path.ismount(self.mountpoint)

    def pinned(self) -> dict[str, Any]:
        """What a saved state records to re-mount exactly this content."""
        return {"name": self.name, "release": self.release.to_dict(), "source": _public_source(self.source)}


def _public_source(source: dict[str, Any]) -> dict[str, Any]:
    return dict(source)  # the master public key is public; nothing secret is kept in a source


def _pid_alive(pid: int) -> bool:
    try:  # reap it if it is our own child (the GUI or a test mounted it), else a zombie looks alive
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mounts_dir(where: VmlogHome | None = None) -> Path:
    return (where or home()).runtime / "releases" / "mounts"


def default_mountpoint(name: str, where: VmlogHome | None = None, *, project: str | None = None) -> Path:
    base = (where or home()).runtime / "releases" / "mnt"
    return base / "projects" / project / _safe(name) if project else base / name


def default_cache_dir(where: VmlogHome | None = None) -> Path:
    return (where or home()).cache / "releases"


def log_path(name: str, where: VmlogHome | None = None, *, project: str | None = None) -> Path:
    return (where or home()).data / "releases" / "logs" / f"{record_name(name, project)}.log"


def _safe(name: str) -> str:
    return name.replace("/", "_")


def record_name(name: str, project: str | None = None) -> str:
    """The file name of a mount's record: a release mounted for a project is that project's alone."""
    return f"{project}@{_safe(name)}" if project else _safe(name)


def _record(name: str, where: VmlogHome | None, project: str | None = None) -> Path:
    return mounts_dir(where) / f"{record_name(name, project)}.json"


def running_mounts(where: VmlogHome | None = None, *, project: str | None = None) -> list[MountHandle]:
    """Mounts whose process is alive and mounted; records of dead ones are cleaned up.

    With ``project``, only the mounts of that project.
    """
    directory = mounts_dir(where)
    if not directory.exists():
        return []
    handles = []
    for path in sorted(directory.glob("*.json")):
        try:
            handle = MountHandle.from_dict(read_json(path))
        except (ValueError, KeyError, OSError):
            continue
        if handle.is_alive():
            if project is None or handle.project == project:
                handles.append(handle)
        elif not _pid_alive(handle.pid):
            _fusermount_unmount(handle.mountpoint, lazy=True)
            path.unlink(missing_ok=True)
    return handles


def mount_release(
    source: ReleaseSource,
    name: str,
    *,
    at: Path | None = None,
    cache_dir: Path | None = None,
    cache_limit: int = DEFAULT_LIMIT,
    log_file: Path | None = None,
    revision: int | None = None,
    pin: str | None = None,
    where: VmlogHome | None = None,
    project: str | None = None,
) -> MountHandle:
    """Verify, pin and mount release ``name`` of ``source``; return once the files are visible.

    With ``project`` the mount belongs to that project (its own record, mount point and log), so
    two projects can mount different revisions of the same release.
    """
    from vmlog.releases.filesystem import require_fuse

    require_fuse()
    if shutil.which("fusermount3") is None:
        raise MountError("fusermount3 is not installed", fix="apt-get install fuse3")
    cache_dir = Path(cache_dir or default_cache_dir(where))
    cache_dir.mkdir(parents=True, exist_ok=True)
    release = source.resolve(name, cache_dir, revision=revision, pin=pin)
    mount_name = release.name
    for handle in running_mounts(where):
        if handle.name == mount_name and handle.project == project:
            owner = f" --project {project}" if project else ""
            raise AlreadyExists(
                f"release {mount_name} is already mounted at {handle.mountpoint}",
                fix=f"vml release umount {mount_name}{owner}",
            )
    # Load the root catalog now: a tampered or unreachable catalog is the caller's error to see.
    source.open_tree(release, cache_dir, cache_limit).close()
    mountpoint = Path(at or default_mountpoint(mount_name, where, project=project)).absolute()
    mountpoint.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint} already has something mounted on it", fix="choose another path with --at")
    log_file = Path(log_file or log_path(mount_name, where, project=project))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    record = _record(mount_name, where, project)
    record.parent.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": mount_name,
        "release": release.to_dict(),
        "source": source.to_config(),
        "mountpoint": str(mountpoint),
        "cache_dir": str(cache_dir),
        "cache_limit": cache_limit,
        "log_file": str(log_file),
    }
    spec_path = record.with_suffix(".spec")
    atomic_write_json(spec_path, spec)
    process = _start_filesystem(spec_path, log_file, mountpoint, mount_name)
    handle = MountHandle(
        mount_name, release, source.to_config(), mountpoint, cache_dir, cache_limit, log_file, process.pid, project
    )
    atomic_write_json(record, handle.to_dict())
    return handle


def _start_filesystem(spec_path: Path, log_file: Path, mountpoint: Path, mount_name: str) -> subprocess.Popen[bytes]:
    """Start the filesystem process for ``spec_path`` and wait until ``mountpoint`` is mounted.

    A process that exits or does not mount within ``MOUNT_TIMEOUT`` is killed, its spec removed, and
    the end of its log is the error's message.
    """
    with open(log_file, "ab") as log_fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "vmlog.releases.mount", str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=log_fh,
            start_new_session=True,
        )
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while not os.path.ismount(mountpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            process.wait()
            spec_path.unlink(missing_ok=True)
            raise MountError(
                f"the filesystem for {mount_name} did not come up: {_tail(log_file)}",
                fix=f"see the whole log with: vml release log {mount_name}",
            )
        time.sleep(0.05)
    return process


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text("utf-8", "replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "no log"


def _fusermount_unmount(mountpoint: Path, *, lazy: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [str(mountpoint)]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def umount(
    name: str,
    where: VmlogHome | None = None,
    *,
    timeout: float = 20.0,
    project: str | None = None,
    lazy: bool = False,
) -> MountHandle:
    """Unmount release ``name`` (of ``project``) and wait for its process to end.

    ``lazy`` detaches the mount even while something (a VM's file server) still holds it open.
    """
    record = _record(name, where, project)
    if not record.exists():
        raise NotFound(
            f"release {name} is not mounted" + (f" for project {project}" if project else ""),
            fix="see the mounted releases with: vml release list --running",
        )
    handle = MountHandle.from_dict(read_json(record))
    if os.path.ismount(handle.mountpoint):
        result = _fusermount_unmount(handle.mountpoint, lazy=lazy)
        if result.returncode != 0:
            raise MountError(
                f"cannot unmount {handle.mountpoint}: {result.stderr.strip()}",
                fix="close the files and shells using it (fuser -m PATH), then try again",
            )
    deadline = time.monotonic() + timeout
    while _pid_alive(handle.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(handle.pid):
        os.kill(handle.pid, signal.SIGTERM)
    record.unlink(missing_ok=True)
    record.with_suffix(".spec").unlink(missing_ok=True)
    return handle


def remount_pinned(
    pinned: list[dict[str, Any]], where: VmlogHome | None = None, *, project: str | None = None
) -> list[MountHandle]:
    """Mount again the exact revisions a saved state recorded (see :meth:`MountHandle.pinned`).

    An item may carry the :class:`ReleaseSource` to use under ``"source_object"`` (a configured
    source the caller trusts); otherwise the recorded source configuration is used.
    """
    from vmlog.releases.sources import source_from_config

    handles = []
    running = {h.name: h for h in running_mounts(where, project=project)}
    for item in pinned:
        release = Release.from_dict(item["release"])
        current = running.get(item["name"])
        if current is not None and current.release.pin == release.pin:
            handles.append(current)
            continue
        if current is not None:
            umount(current.name, where, project=project, lazy=True)
        source = item.get("source_object") or source_from_config(item["source"])
        handles.append(
            mount_release(
                source, release.path, revision=release.revision, pin=release.pin, where=where, project=project
            )
        )
    return handles
