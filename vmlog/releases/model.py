"""The release vocabulary shared by every source kind: releases, tree entries, and the two interfaces.

A :class:`ReleaseSource` lists releases and opens one as a :class:`ReleaseTree`, pinned to an exact
revision; the lazy filesystem only ever talks to a :class:`ReleaseTree`, so CernVM-FS repositories
and plain HTTP release trees mount the same way.
"""

from __future__ import annotations

import re
import stat
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from vmlog.releases.errors import BadCatalog


@dataclass(frozen=True)
class Release:
    """One release of a source, pinned: ``pin`` names the exact content (root catalog hash or
    catalogue digest), so mounting the same ``Release`` again always shows the same files."""

    name: str
    revision: int
    tag: str
    source_url: str
    path: str  # directory of the release inside the source, e.g. "sw/software/24.0/24.0.3"
    pin: str
    series: str = ""
    timestamp: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Release:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Chunk:
    """A piece of a file's content: where it starts, how long it is, and the object holding it."""

    offset: int
    size: int
    key: str  # cache key and object name, understood by the tree that produced it


@dataclass(frozen=True)
class Entry:
    """A file, directory, symbolic link or special file (fifo, socket, device) of a release tree.

    An ``external`` file's data lives outside the repository's object store (CernVM-FS external
    data); the tree knows its size but cannot read it.
    """

    name: str
    kind: Literal["file", "dir", "link", "fifo", "socket", "chardev", "blockdev"]
    mode: int  # permission bits only
    size: int
    mtime: int
    target: str = ""
    chunks: tuple[Chunk, ...] = ()
    rdev: int = 0  # device number of a character or block device
    external: bool = False
    mtime_ns: int = 0  # the nanoseconds beyond ``mtime``

    @property
    def st_mode(self) -> int:
        kind = _TYPE_BITS[self.kind]
        # Read-only filesystem: no write bits, whatever the publisher had.
        return kind | (self.mode & 0o555)


_TYPE_BITS = {
    "file": stat.S_IFREG, "dir": stat.S_IFDIR, "link": stat.S_IFLNK, "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK,
}
SPECIAL_KINDS = {stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}


class ReleaseTree(ABC):
    """The files of one pinned release, paths relative to the release directory ("" is its root)."""

    @abstractmethod
    def lookup(self, path: str) -> Entry | None:
        """The entry at ``path`` (``""`` or ``/a/b``), or None if there is none."""

    @abstractmethod
    def listdir(self, path: str) -> list[Entry]:
        """Entries of the directory at ``path`` (``NotADirectoryError``/``FileNotFoundError`` otherwise)."""

    @abstractmethod
    def fetch_chunk(self, chunk: Chunk) -> Path:
        """A local file holding ``chunk``'s verified plain content (cached; fetched on first use)."""

    def close(self) -> None:  # noqa: B027 - most trees hold nothing to release
        """Release open catalogs."""


class ReleaseSource(ABC):
    """Where releases come from; its configuration round-trips through :meth:`to_config`."""

    kind: ClassVar[str]

    def __init__(self, url: str, *, name: str, pattern: str, proxy: str | None) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.pattern = pattern
        self.proxy = proxy
        pattern_fields(pattern)  # validate early

    @abstractmethod
    def list_releases(self, cache_dir: Path) -> list[Release]:
        """Every release currently published (verifies the source's signatures or digests)."""

    @abstractmethod
    def resolve(self, name: str, cache_dir: Path, *, revision: int | None = None, pin: str | None = None) -> Release:
        """The release called ``name`` at ``revision`` (default: the current one).

        With ``pin`` (from a saved state) and the server unreachable, the release is rebuilt from the
        cache if its catalog is there.
        """

    @abstractmethod
    def open_tree(self, release: Release, cache_dir: Path, cache_limit: int) -> ReleaseTree:
        """The lazy tree of ``release``; works offline for what is cached."""

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "name": self.name, "pattern": self.pattern, "proxy": self.proxy}


_FIELD_RE = re.compile(r"^\{(series|release)\}$")


def pattern_fields(pattern: str) -> list[str | None]:
    """Split ``sw/software/{series}/{release}`` into literal parts (str) and fields (as ``{name}``).

    Returns the components; ``BadCatalog`` if the pattern has no ``{release}`` as its last part.
    """
    parts = [p for p in pattern.strip("/").split("/") if p]
    if not parts or parts[-1] != "{release}":
        raise BadCatalog(
            f"release path pattern {pattern!r} must end with {{release}}",
            fix="use e.g. --pattern 'sw/software/{series}/{release}'",
        )
    for part in parts:
        if "{" in part and not _FIELD_RE.match(part):
            raise BadCatalog(f"unknown field {part!r} in release pattern; use {{series}} and {{release}}")
    return list(parts)


def walk_pattern(pattern: str, listdir: Any) -> list[tuple[str, str, str]]:
    """Match ``pattern`` against a tree: (path, series, release) for every release directory.

    ``listdir(path)`` returns the entries of a directory (or raises ``FileNotFoundError``).
    """
    matches: list[tuple[str, dict[str, str]]] = [("", {})]
    for part in pattern_fields(pattern):
        next_matches = []
        for path, fields in matches:
            try:
                entries = [e for e in listdir(path) if e.kind == "dir"]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if part.startswith("{"):
                    next_matches.append((f"{path}/{entry.name}", {**fields, part[1:-1]: entry.name}))
                elif entry.name == part:
                    next_matches.append((f"{path}/{entry.name}", fields))
        matches = next_matches
    return sorted((p.lstrip("/"), f.get("series", ""), f["release"]) for p, f in matches)
