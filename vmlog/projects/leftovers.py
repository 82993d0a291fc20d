"""What a killed vmlog leaves outside the projects, found (and with ``--repair`` removed) by ``vml doctor``.

Work directories in the cache (``vmlstate-import-PID-*`` with the project a crashed import was
creating, ``vmlstate-export-*`` and other ``vmlstate-*``), hidden ``.NAME.vmlstate.tmp-*`` outputs
of an export (recorded in ``cache/exports/`` while it writes), partial downloads nobody holds,
staging entries of the image store, and ``qemu-nbd`` servers (with their socket directories)
whose vmlog process is gone. What belongs to a running vmlog process is never touched: records
carry a process id, and the rest is left alone while any project or download lock is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vmlog.fsutil import atomic_write_text
from vmlog.paths import VmlogHome

EXPORTS = "exports"
IMPORT_PREFIX = "vmlstate-import-"
IMPORT_RECORD = "import.json"
WORK_PREFIX = "vmlstate-"
NBD_PREFIX = "vmlog-nbd-"
STAGING_AGE = 3600.0  # an image-store staging entry older than this has lost its process


@dataclass
class Leftover:
    """One thing a crash left; ``remove`` deletes (or ends) it, ``project`` names a half-imported project."""

    what: str
    remove: Callable[[], object]
    project: str | None = None
    harmless: bool = False  # kept on purpose until repaired (a partial download a pull resumes)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_in(name: str, prefix: str) -> int | None:
    head = name.removeprefix(prefix).split("-", 1)[0]
    return int(head) if head.isdigit() else None


@contextlib.contextmanager
def export_recorded(cache: Path, target: Path) -> Iterator[None]:
    """Record that this process writes ``target`` (through a hidden temp sibling) until the block ends."""
    records = cache / EXPORTS
    records.mkdir(parents=True, exist_ok=True)
    record = records / f"{os.getpid()}-{secrets.token_hex(4)}.json"
    atomic_write_text(record, json.dumps({"pid": os.getpid(), "target": str(Path(target).absolute())}) + "\n")
    try:
        yield
    finally:
        record.unlink(missing_ok=True)


def _locks_free(directory: Path, pattern: str = "*.lock") -> bool:
    """True if no process holds any of the flock files in ``directory``."""
    if not directory.is_dir():
        return True
    for path in directory.glob(pattern):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
    return True


def _tree(path: Path) -> Callable[[], object]:
    return lambda: shutil.rmtree(path, ignore_errors=True)


def _exports(cache: Path) -> Iterator[Leftover]:
    records = cache / EXPORTS
    for record in sorted(records.glob("*.json")) if records.is_dir() else ():
        try:
            data = json.loads(record.read_text())
            pid, target = int(data["pid"]), Path(data["target"])
        except (OSError, ValueError, KeyError, TypeError):
            yield Leftover(f"unreadable export record {record.name}", lambda r=record: r.unlink(missing_ok=True))
            continue
        if pid_alive(pid):
            continue
        temps = sorted(target.parent.glob(f".{target.name}.tmp-*"))

        def remove(temps: list[Path] = temps, record: Path = record) -> None:
            for temp in temps:
                temp.unlink(missing_ok=True)
            record.unlink(missing_ok=True)

        yield Leftover(f"unfinished export to {target} ({len(temps)} temporary file(s))", remove)


def _work_dirs(home: VmlogHome) -> Iterator[Leftover]:
    cache = home.cache
    quiet = _locks_free(home.locks) and _locks_free(home.downloads)
    for entry in sorted(cache.glob(f"{WORK_PREFIX}*")) if cache.is_dir() else ():
        if entry.name.startswith(IMPORT_PREFIX):
            pid = _pid_in(entry.name, IMPORT_PREFIX)
            if pid is not None and pid_alive(pid):
                continue
            project = None
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                project = str(json.loads((entry / IMPORT_RECORD).read_text())["project"])
            yield Leftover(f"work directory of an interrupted import {entry.name}", _tree(entry), project)
        elif quiet:
            yield Leftover(f"work directory {entry.name}", _tree(entry))


def _downloads_and_staging(home: VmlogHome) -> Iterator[Leftover]:
    downloads = home.downloads
    for part in sorted(downloads.glob("*.part")) if downloads.is_dir() else ():
        if _locks_free(downloads, part.name.removesuffix(".part") + ".lock"):
            size = part.stat().st_size if part.exists() else 0
            yield Leftover(f"partial download {part.name} ({size} bytes, resumed by the next pull)",
                           lambda p=part: p.unlink(missing_ok=True), harmless=True)
    staging = home.images / ".staging"
    now = time.time()
    for entry in sorted(staging.iterdir()) if staging.is_dir() else ():
        with contextlib.suppress(OSError):
            if now - entry.lstat().st_mtime > STAGING_AGE:
                remove = _tree(entry) if entry.is_dir() else (lambda e=entry: e.unlink(missing_ok=True))
                yield Leftover(f"image store staging entry {entry.name}", remove)


def _nbd_servers(home: VmlogHome) -> Iterator[Leftover]:
    """qemu-nbd processes of this user whose socket directory's vmlog process is dead, or that serve this home."""
    roots = [str(p) for p in (home.data, home.cache)]
    tmp = Path(tempfile.gettempdir())
    for proc in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != os.getuid():
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"qemu-nbd"):
            continue
        args = [a.decode("utf-8", "replace") for a in argv]
        socket_dir = next((Path(a).parent for a in args if a.startswith(str(tmp / NBD_PREFIX))), None)
        owner = _pid_in(socket_dir.name, NBD_PREFIX) if socket_dir else None
        ours = any(a.startswith(tuple(roots)) for a in args[1:])
        if ours and (owner is None or not pid_alive(owner)) and _orphan(int(proc.name)):
            yield Leftover(f"qemu-nbd process {proc.name} left by a killed vmlog", lambda p=int(proc.name): _end(p))
    for entry in sorted(tmp.glob(f"{NBD_PREFIX}*")):
        owner = _pid_in(entry.name, NBD_PREFIX)
        if owner is not None and not pid_alive(owner) and entry.is_dir() and entry.stat().st_uid == os.getuid():
            yield Leftover(f"qemu-nbd socket directory {entry}", _tree(entry))


def _orphan(pid: int) -> bool:
    """A process whose parent is gone (re-parented to init or a subreaper that is not vmlog)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    parent = int(fields[1])
    if parent == 1:
        return True
    try:
        comm = Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        return True
    return b"vmlog" not in comm and b"vml" not in comm


def _end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def find_leftovers(home: VmlogHome) -> list[Leftover]:
    """Everything a killed vmlog left in ``home`` (and its qemu-nbd servers), in a fixed order."""
    return [*_exports(home.cache), *_work_dirs(home), *_downloads_and_staging(home), *_nbd_servers(home)]
