"""Read one CernVM-FS file catalog: an SQLite database keyed by the MD5 of each full path.

Schema 2.5: table ``catalog`` (md5path_1/2, parent_1/2, hash, size, mode, mtime, flags, name,
symlink, ...), ``nested_catalogs`` (path, sha1, size), ``chunks`` (md5path_1/2, offset, size, hash)
and ``properties`` (key, value). A directory whose subtree lives in another catalog is flagged as a
nested mountpoint here and as the nested root there.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from vmlog.releases.content_hash import SUFFIX_CATALOG, SUFFIX_PARTIAL, ContentHash, md5_path_pair
from vmlog.releases.errors import BadCatalog

FLAG_DIR = 1
FLAG_NESTED_MOUNTPOINT = 2
FLAG_FILE = 4
FLAG_LINK = 8
FLAG_SPECIAL = 16
FLAG_NESTED_ROOT = 32
FLAG_CHUNKED = 64
FLAG_EXTERNAL = 128
FLAG_BIND_MOUNTPOINT = 0x4000
FLAG_HIDDEN = 0x8000
COMPRESSION_SHIFT = 11  # 0 = zlib, 1 = stored as is

_COLUMNS = "name, flags, mode, size, mtime, symlink, hash"
_COLUMNS_NS = _COLUMNS + ", mtimens"


@dataclass(frozen=True)
class CatalogRow:
    name: str
    flags: int
    mode: int
    size: int
    mtime: int
    symlink: str
    hash: ContentHash | None
    mtime_ns: int = 0  # the nanosecond part of the modification time (catalog column mtimens, schema 2.5 rev 7)

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & FLAG_DIR)

    @property
    def is_link(self) -> bool:
        return bool(self.flags & FLAG_LINK)

    @property
    def listed(self) -> bool:
        """Whether a directory listing shows the entry: cvmfs hides hidden entries and bind mountpoints."""
        return not self.flags & (FLAG_HIDDEN | FLAG_BIND_MOUNTPOINT)

    @property
    def compressed(self) -> bool:
        return (self.flags >> COMPRESSION_SHIFT) & 0x7 == 0


class Catalog:
    """One opened catalog file; thread-safe (the filesystem serves several readers at once)."""

    def __init__(self, path: Path, mountpoint: str) -> None:
        self.mountpoint = mountpoint  # "" for the root catalog, "/sw/software" for a nested one
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise BadCatalog(f"catalog {path.name} is not an SQLite database: {exc}") from exc
        if "catalog" not in tables:
            raise BadCatalog(f"catalog {path.name} has no 'catalog' table", fix="the repository is corrupt")
        self._has_chunks = "chunks" in tables
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(catalog)")}
        self._columns = _COLUMNS_NS if "mtimens" in columns else _COLUMNS
        self._nested: list[tuple[str, ContentHash]] | None = None
        if "nested_catalogs" not in tables:
            self._nested = []

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, raw: tuple) -> CatalogRow:
        name, flags, mode, size, mtime, symlink, digest = raw[:7]
        content = ContentHash.from_flags(digest, flags) if digest else None
        mtime_ns = raw[7] if len(raw) > 7 and raw[7] else 0
        return CatalogRow(name or "", flags, mode, size or 0, mtime or 0, symlink or "", content, mtime_ns)

    def lookup(self, path: str) -> CatalogRow | None:
        md5_1, md5_2 = md5_path_pair(path)
        with self._lock:
            raw = self._db.execute(
                f"SELECT {self._columns} FROM catalog WHERE md5path_1=? AND md5path_2=?", (md5_1, md5_2)
            ).fetchone()
        return self._row(raw) if raw else None

    def children(self, path: str) -> list[CatalogRow]:
        parent_1, parent_2 = md5_path_pair(path)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {self._columns} FROM catalog WHERE parent_1=? AND parent_2=?", (parent_1, parent_2)
            ).fetchall()
        # The root of a catalog must never list itself (its parent may be stored as its own key).
        return [self._row(r) for r in rows if r[0]]

    def chunks(self, path: str, flags: int) -> list[tuple[int, int, ContentHash]]:
        if not self._has_chunks:
            return []
        md5_1, md5_2 = md5_path_pair(path)
        with self._lock:
            rows = self._db.execute(
                "SELECT offset, size, hash FROM chunks WHERE md5path_1=? AND md5path_2=? ORDER BY offset",
                (md5_1, md5_2),
            ).fetchall()
        return [(o, s, ContentHash.from_flags(h, flags, SUFFIX_PARTIAL)) for o, s, h in rows]

    def nested(self) -> list[tuple[str, ContentHash]]:
        """(mountpoint, catalog hash) of the catalogs nested directly below this one."""
        if self._nested is None:
            with self._lock:
                rows = self._db.execute("SELECT path, sha1 FROM nested_catalogs").fetchall()
            self._nested = [(p, ContentHash.parse(h, SUFFIX_CATALOG)) for p, h in rows]
        return self._nested

    def nested_for(self, path: str) -> tuple[str, ContentHash] | None:
        """The nested catalog that holds ``path``, if ``path`` lies below one of this catalog's."""
        for mountpoint, content in self.nested():
            if path == mountpoint or path.startswith(mountpoint + "/"):
                return mountpoint, content
        return None

    def properties(self) -> dict[str, str]:
        with self._lock:
            try:
                return {k: str(v) for k, v in self._db.execute("SELECT key, value FROM properties")}
            except sqlite3.DatabaseError:
                return {}

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM catalog").fetchone()[0]
