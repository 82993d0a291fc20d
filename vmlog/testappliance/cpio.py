"""A minimal writer of "newc" cpio archives, the format the Linux kernel unpacks as an initramfs.

Written in Python so building the appliance needs neither ``cpio`` nor root: device nodes and
ownership are simply written into the archive headers.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class CpioEntry:
    """One archive member. ``mode`` includes the file type bits (``stat.S_IFREG | 0o755``...)."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node
    uid: int = 0
    gid: int = 0


@dataclass
class CpioArchive:
    """Entries in the order they are written; directories must come before their content."""

    entries: list[CpioEntry] = field(default_factory=list)

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFDIR | mode))

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFREG | mode, data))

    def add_symlink(self, name: str, target: str) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFLNK | 0o777, target.encode()))

    def add_char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self.entries.append(CpioEntry(name, stat.S_IFCHR | mode, rdev=(major, minor)))

    def to_bytes(self) -> bytes:
        """The archive, with every timestamp at 0 so equal inputs give equal bytes."""
        out = bytearray()
        for ino, entry in enumerate(self.entries, start=1):
            _append(out, entry, ino)
        _append(out, CpioEntry(_TRAILER, 0), 0)
        return bytes(out)


def _append(out: bytearray, entry: CpioEntry, ino: int) -> None:
    name = entry.name.lstrip("/").encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, entry.uid, entry.gid, nlink, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
    out += _MAGIC + b"".join(b"%08X" % value for value in fields)
    out += name
    out += b"\0" * (-len(out) % 4)
    out += entry.data
    out += b"\0" * (-len(out) % 4)
