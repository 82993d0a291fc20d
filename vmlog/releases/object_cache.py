"""A persistent, content-addressed cache of verified release objects, with a size limit (LRU eviction).

Only verified content enters the cache (the caller checks the digest first), and every entry is
written to a temporary name and renamed, so a crash never leaves a half object under a real name.
An entry's modification time is its last use: reads touch it, and eviction removes the oldest
first. Several mounts may share one cache directory; an object evicted under another mount's feet
is simply fetched again.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

DEFAULT_LIMIT = 4 << 30  # 4 GiB


class ObjectCache:
    """Objects named by their content hash text (``abcd...C``), stored as ready-to-read plain files."""

    def __init__(self, root: Path, limit_bytes: int = DEFAULT_LIMIT) -> None:
        self.root = Path(root)
        self.limit_bytes = limit_bytes
        self._objects = self.root / "objects"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._usage: int | None = None
        self._pinned: set[str] = set()

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid cache key {key!r}")
        return self._objects / key[:2] / key

    def get(self, key: str) -> Path | None:
        """The cached file for ``key`` (marked as just used), or None."""
        path = self._path(key)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()

    def pin(self, key: str) -> None:
        """Keep ``key`` out of eviction while this process uses it (open catalogs)."""
        self._pinned.add(key)

    def put(self, key: str, data: bytes) -> Path:
        """Store verified ``data`` under ``key`` and return its path; may evict older entries."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{secrets.token_hex(4)}.part")
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        with self._lock:
            if self._usage is not None:
                self._usage += len(data)
        self.evict_if_needed()
        return path

    def usage(self) -> int:
        """Bytes held by the cache (scanned once, then kept up to date by this process)."""
        with self._lock:
            if self._usage is None:
                self._usage = sum(size for _, _, size, _ in self._entries())
            return self._usage

    def _entries(self) -> list[tuple[float, Path, int, str]]:
        entries = []
        for sub in self._objects.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                entries.append((st.st_mtime, Path(entry.path), st.st_size, entry.name))
        return entries

    def evict_if_needed(self) -> int:
        """Remove least recently used entries until the cache is below 90% of its limit; bytes freed."""
        if self.usage() <= self.limit_bytes:
            return 0
        with self._lock:
            entries = sorted(self._entries())
            total = sum(size for _, _, size, _ in entries)
            target = int(self.limit_bytes * 0.9)
            freed = 0
            for _, path, size, name in entries:
                if total - freed <= target:
                    break
                if name in self._pinned:
                    continue
                path.unlink(missing_ok=True)
                freed += size
            self._usage = total - freed
            return freed
