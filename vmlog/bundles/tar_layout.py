"""Writes a bundle's tar in one file, in place: room kept at the front for the manifest, large members where they stay.

The manifest must be the first member (every reader checks it before anything else) yet holds the
digests of the members after it, which are known only once those are compressed. Compressing each
member into a work file and copying it into the tar afterwards kept two compressed copies on disk
at the peak (8 GiB for a 4 GiB change). Here the room for the manifest (and its signature) is kept
at the front, each large member's compressed bytes go straight to their final place, its header is
written over the room kept for it once its size is known, and the front is filled last. The result
is an ordinary POSIX tar: the manifest is padded with trailing spaces (valid JSON) to the room kept
for it, and each member written in place has a PAX header (a ``comment`` record, and ``size`` past
8 GiB), so its header is always three blocks whatever its size.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK  # tar pads the archive to whole records, as tarfile and GNU tar do
IN_PLACE_HEADER = 3 * BLOCK  # PAX header block, one block of PAX records, the ustar header
_COMMENT = "vmlog: member written in place"
_MTIME = 0


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = _MTIME
    info.type = tarfile.REGTYPE
    return info


def padding(size: int) -> bytes:
    """The zero bytes that round a member of ``size`` bytes up to whole tar blocks."""
    return b"\0" * (-size % BLOCK)


def member_header(name: str, size: int) -> bytes:
    """The header of a small member: one ustar block (names are short, sizes small)."""
    header = _info(name, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if len(header) != BLOCK:
        raise ValueError(f"member {name!r} needs an extended tar header")
    return header


def in_place_header(name: str, size: int) -> bytes:
    """The header of a member written in place: always :data:`IN_PLACE_HEADER` bytes, for any size."""
    info = _info(name, size)
    info.pax_headers = {"comment": _COMMENT}
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if len(header) != IN_PLACE_HEADER:
        raise ValueError(f"member {name!r} does not fit a {IN_PLACE_HEADER}-byte header")
    return header


def front_size(room: dict[str, int]) -> int:
    """Bytes kept at the front for the small members ``room`` (name -> exact member size), in order."""
    return sum(BLOCK + size + len(padding(size)) for size in room.values())


class InPlaceTar:
    """A tar written into ``fh`` (an empty file), whose first bytes are kept for members of known sizes.

    ``room`` names the front members and their exact sizes, in order; :meth:`fill_front` writes them
    last. Members after the front are added in order with :meth:`add_bytes` or :meth:`member`.
    """

    def __init__(self, fh: BinaryIO, room: dict[str, int]) -> None:
        self.fh = fh
        self.room = dict(room)
        self._front = front_size(self.room)
        fh.seek(self._front)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.fh.write(member_header(name, len(data)) + data + padding(len(data)))

    @contextmanager
    def member(self, name: str) -> Iterator[BinaryIO]:
        """The file, positioned where member ``name``'s data goes; write it all, then its header is written."""
        start = self.fh.tell()
        self.fh.seek(start + IN_PLACE_HEADER)
        yield self.fh
        end = self.fh.tell()
        size = end - start - IN_PLACE_HEADER
        self.fh.write(padding(size))
        after = self.fh.tell()
        self.fh.seek(start)
        self.fh.write(in_place_header(name, size))
        self.fh.seek(after)

    def close(self) -> None:
        """The end-of-archive blocks, padded to a whole record."""
        end = self.fh.tell() + 2 * BLOCK
        self.fh.write(b"\0" * (2 * BLOCK + (-end % RECORD)))

    def fill_front(self, members: dict[str, bytes]) -> None:
        """Write the front members, each exactly the size it was given room for."""
        if list(members) != list(self.room):
            raise ValueError(f"the front holds {', '.join(self.room)}, not {', '.join(members)}")
        after = self.fh.tell()
        self.fh.seek(0)
        for name, data in members.items():
            if len(data) != self.room[name]:
                raise ValueError(f"member {name!r} is {len(data)} bytes; its room is {self.room[name]}")
            self.fh.write(member_header(name, len(data)) + data + padding(len(data)))
        if self.fh.tell() != self._front:  # pragma: no cover - front_size computed the same sum
            raise AssertionError("the front members do not fill the room kept for them")
        self.fh.seek(after)
