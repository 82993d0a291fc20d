"""Bounds on what a member of a box or OVA may expand to, checked before its first byte is written and while it is.

A compressed box can hold a member that expands a thousandfold (a box bomb), or whose tar header declares far more
than its disk could be. Before the first write the member's size in its tar header must fit the virtual size its
own image header declares (a qcow2, VMDK or VDI file holds at most about its virtual size plus metadata), a plain
tar must hold the bytes its header declares, and the file system must have room. While it is written, runs of
zeros become holes (so they cost no disk, and their count is bounded by that length) and the data bytes of the
whole archive are bounded by a ratio to the compressed bytes read: real disks expand 3-5x (an 8 GiB raw ext4 disk
of Debian's /usr/share: 2.8x over the whole member, at most 18x at any moment of the read; the same as qcow2:
3.9x), a bomb 1000x (gzip's limit).
"""

from __future__ import annotations

import errno
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmlog.errors import IntegrityError
from vmlog.store.image_gate import HostileImage
from vmlog.store.image_headers import declared_virtual_size

EXPANSION_RATIO = 100  # data bytes written per compressed byte read, over the whole archive
EXPANSION_FLOOR = 64 << 20  # a small archive may always expand to this much data
LENGTH_SLACK = 64 << 20  # metadata a qcow2/VMDK/VDI file holds beyond its data (L1/L2 tables, grain tables)
READ_AHEAD = tarfile.RECORDSIZE  # how far the tar reader reads the file ahead of the member it is at
# Formats whose files hold no long zero runs: the member's declared size is the space it takes.
DENSE_FORMATS = ("qcow2", "vmdk", "vdi", "vhdx", "vpc")


def _size(num: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if num >= 1 << shift:
            return f"{num / (1 << shift):.1f} {unit}"
    return f"{num} bytes"


def image_length_bound(virtual_size: int) -> int:
    """The longest a qcow2, VMDK or VDI file of ``virtual_size`` can honestly be (data, tables, preallocation)."""
    return 2 * virtual_size + LENGTH_SLACK


@dataclass
class ExpansionBudget:
    """The archive-wide account: data bytes written against the compressed bytes of the archive read so far."""

    archive: str  # its name, for messages
    archive_size: int
    compressed: bool  # False for a plain tar: nothing expands, a header must not declare more than the file holds
    position: Callable[[], int]  # how many bytes of the archive file have been read
    data: int = 0
    # the virtual size the archive's own metadata declares for a disk without a size in its header (a raw disk of
    # a box whose metadata.json says virtual_size), and where it says so; set before each member
    declared_virtual: tuple[str, int] | None = None

    def data_ceiling(self) -> int:
        """The most data the whole archive may produce."""
        if not self.compressed:
            return self.archive_size
        return max(EXPANSION_RATIO * self.archive_size, EXPANSION_FLOOR)

    def check_header(self, what: str, declared: int, sparse: bool) -> None:
        """A plain tar holds its members' bytes: a header declaring more than is left lies (``sparse``: a GNU sparse
        member, whose header counts its holes)."""
        rest = self.archive_size - self.position() + READ_AHEAD
        if not self.compressed and not sparse and declared > rest:
            raise HostileImage(
                f"{self.archive}: {what} declares {_size(declared)} in its tar header, more than the"
                f" {_size(rest)} left in the archive", reason="member-size",
            )  # fmt: skip

    def start_member(self, what: str, declared: int, head: bytes, dest: Path, limit: int, sparse: bool) -> int:
        """Check member ``what`` (``declared`` bytes in its tar header, first bytes ``head``) before anything of it
        is written to ``dest``; returns the length it may reach. ``sparse``: a GNU sparse member, whose header
        declares its length with the holes."""
        image = declared_virtual_size(head)
        if image is None and self.declared_virtual is not None:
            image = self.declared_virtual
        if image is not None:
            fmt, virtual = image
            bound = image_length_bound(virtual)
            if declared > bound:
                raise HostileImage(
                    f"{self.archive}: {what} declares {_size(declared)} in its tar header but "
                    f"{fmt if fmt.endswith('.json') else f'its {fmt} header'} a virtual size of {_size(virtual)};"
                    " a decompression bomb", reason="member-size",
                )  # fmt: skip
            limit = min(limit, bound)
        if declared > limit:
            raise IntegrityError(f"member {what} is {declared} bytes, over the {limit} byte limit")
        rest = self.archive_size - self.position()
        dense = image is not None and image[0] in DENSE_FORMATS  # not the metadata's hint: a raw disk may be sparse
        self._check_free_space(what, min(declared if dense else min(declared, rest), self.data_ceiling()), dest)
        return limit

    def _check_free_space(self, what: str, needed: int, dest: Path) -> None:
        """Refuse as a full disk would, naming the file system's mount point (the work directory goes with the
        refusal, so the fix's `df -h` must name something that stays)."""
        free = shutil.disk_usage(dest.parent).free
        if needed > free:
            mount = next((p for p in dest.parents if os.path.ismount(p)), Path("/"))
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {what} needs {_size(needed)}, {_size(free)}"
                          " free", str(mount))  # fmt: skip

    def count_data(self, count: int, what: str) -> None:
        """Account ``count`` more data bytes (not holes) of member ``what``; refuse a bomb as soon as it shows."""
        self.data += count
        if not self.compressed:
            return
        read = self.position()
        if self.data > max(EXPANSION_RATIO * read, EXPANSION_FLOOR):
            raise HostileImage(
                f"{self.archive}: {what} expands to more than {EXPANSION_RATIO} times the compressed bytes read"
                f" ({_size(self.data)} of data from {_size(read)}); a decompression bomb", reason="expansion",
            )  # fmt: skip
