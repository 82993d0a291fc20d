"""Advisory file locks (flock) used by the image store and the downloader to serialise per-digest work."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

# Re-exported for code that imported them from here before vmlog.fsutil existed.
from vmlog.fsutil import atomic_write_bytes, atomic_write_text, fsync_dir

__all__ = ["atomic_write_bytes", "atomic_write_text", "file_lock", "fsync_dir"]


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold an ``flock`` on ``path`` (created if missing); yields False if non-blocking and busy.

    flock locks vanish with the process, so a killed process never leaves a stale lock behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
