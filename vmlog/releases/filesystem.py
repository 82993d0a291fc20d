"""The read-only FUSE filesystem that shows a :class:`ReleaseTree`, fetching file content on first read.

Every failure to produce verified content (digest mismatch, server gone and nothing cached) is an
``EIO`` for the reader and a line in the release's log, never wrong bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from typing import Any

from vmlog.errors import VmlogError
from vmlog.releases.model import Chunk, Entry, ReleaseTree

log = logging.getLogger("vmlog.releases")

try:
    import mfusepy as fuse
except (ImportError, OSError):  # the binding is the optional "releases" extra; libfuse3 may be missing
    fuse = None  # type: ignore[assignment]


def require_fuse() -> Any:
    if fuse is None:
        raise VmlogError(
            "mounting releases needs the FUSE binding mfusepy and libfuse3",
            fix="pip install 'vmlog[releases]' and apt-get install fuse3",
        )
    return fuse


_Base: type = fuse.Operations if fuse is not None else object


class ReleaseFilesystem(_Base):  # type: ignore[misc,valid-type]
    """FUSE operations over one pinned release; thread-safe, read-only."""

    use_ns = True

    def __init__(self, tree: ReleaseTree, *, uid: int | None = None, gid: int | None = None) -> None:
        self.tree = tree
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self._lock = threading.Lock()
        self._handles: dict[int, tuple[Entry, dict[str, int]]] = {}
        self._next = 1

    @staticmethod
    def _rel(path: str) -> str:
        return "" if path == "/" else path

    def _lookup(self, path: str) -> Entry:
        try:
            entry = self.tree.lookup(self._rel(path))
        except VmlogError as exc:
            log.error("lookup %s failed: %s", path, exc.message)
            raise fuse.FuseOSError(errno.EIO) from exc
        if entry is None:
            raise fuse.FuseOSError(errno.ENOENT)
        return entry

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        entry = self._lookup(path)
        mtime_ns = entry.mtime * 1_000_000_000 + entry.mtime_ns
        return {
            "st_rdev": entry.rdev,
            "st_mode": entry.st_mode,
            "st_nlink": 2 if entry.kind == "dir" else 1,
            "st_size": entry.size,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_mtime": mtime_ns,
            "st_ctime": mtime_ns,
            "st_atime": mtime_ns,
            "st_blocks": (entry.size + 511) // 512,
        }

    def readdir(self, path: str, fh: Any) -> list[str]:
        try:
            entries = self.tree.listdir(self._rel(path))
        except FileNotFoundError as exc:
            raise fuse.FuseOSError(errno.ENOENT) from exc
        except NotADirectoryError as exc:
            raise fuse.FuseOSError(errno.ENOTDIR) from exc
        except VmlogError as exc:
            log.error("listing %s failed: %s", path, exc.message)
            raise fuse.FuseOSError(errno.EIO) from exc
        return [".", ".."] + [e.name for e in entries]

    def readlink(self, path: str) -> str:
        entry = self._lookup(path)
        if entry.kind != "link":
            raise fuse.FuseOSError(errno.EINVAL)
        return entry.target

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise fuse.FuseOSError(errno.EROFS)
        entry = self._lookup(path)
        if entry.kind == "dir":
            raise fuse.FuseOSError(errno.EISDIR)
        if entry.kind != "file":  # a fifo, socket or device of a read-only archive has nothing to read
            raise fuse.FuseOSError(errno.ENXIO)
        if entry.external:
            log.error("open %s: an external file (its data lives outside the repository's object store); "
                      "vmlog does not read external data", path)
            raise fuse.FuseOSError(errno.EOPNOTSUPP)
        with self._lock:
            handle = self._next
            self._next += 1
            self._handles[handle] = (entry, {})
        return handle

    def _chunk_fd(self, path: str, fds: dict[str, int], chunk: Chunk) -> int:
        fd = fds.get(chunk.key)
        if fd is None:
            try:
                local = self.tree.fetch_chunk(chunk)
            except VmlogError as exc:
                log.error("read %s: %s", path, exc.message)
                raise fuse.FuseOSError(errno.EIO) from exc
            except OSError as exc:
                log.error("read %s: %s", path, exc)
                raise fuse.FuseOSError(errno.EIO) from exc
            fd = os.open(local, os.O_RDONLY)
            with self._lock:
                old = fds.setdefault(chunk.key, fd)
            if old != fd:
                os.close(fd)
                fd = old
        return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        entry, fds = self._handles[fh]
        end = min(offset + size, entry.size)
        parts = []
        for chunk in entry.chunks:
            if chunk.offset + chunk.size <= offset or chunk.offset >= end:
                continue
            fd = self._chunk_fd(path, fds, chunk)
            start = max(offset, chunk.offset)
            stop = min(end, chunk.offset + chunk.size)
            parts.append(os.pread(fd, stop - start, start - chunk.offset))
        return b"".join(parts)

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            _, fds = self._handles.pop(fh, (None, {}))
        for fd in fds.values():
            os.close(fd)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0, "f_namemax": 255}

    def destroy(self, path: str) -> None:
        self.tree.close()
