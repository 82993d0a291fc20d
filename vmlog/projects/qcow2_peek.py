"""Reading what vmlog needs from its own qcow2 layers' headers, without qemu-img and without opening their chains.

A save must not cost more as the history grows: ``qemu-img create -b`` and ``qemu-img map``
open every file of the backing chain, while the overlay's size, its backing file's name and
whether it holds data of its own are in the first kilobytes of the one file. Only layers vmlog
wrote itself are read this way; anything unexpected raises ``ValueError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"QFI\xfb"
_HEADER = struct.Struct(">4sIQIIQIIQ")  # magic .. l1_table_offset (48 bytes)
_INCOMPATIBLE = struct.Struct(">Q")  # v3: at offset 72
_EXTENDED_L2 = 1 << 4
_OFFSET_MASK = 0x00FFFFFFFFFFFE00
MAX_BACKING_NAME = 1023  # what qemu itself accepts


@dataclass(frozen=True)
class LayerHeader:
    version: int
    virtual_size: int
    cluster_size: int
    backing_name: str | None
    l1_size: int
    l1_offset: int
    extended_l2: bool


def read_header(path: Path) -> LayerHeader:
    with open(path, "rb") as f:
        head = f.read(104)
        if len(head) < _HEADER.size or head[:4] != MAGIC:
            raise ValueError(f"{path} is not a qcow2 image")
        _magic, version, bf_offset, bf_size, cluster_bits, size, _crypt, l1_size, l1_offset = _HEADER.unpack_from(head)
        if not 9 <= cluster_bits <= 21 or bf_size > MAX_BACKING_NAME:
            raise ValueError(f"{path} has an unreadable qcow2 header")
        incompatible = _INCOMPATIBLE.unpack_from(head, 72)[0] if version >= 3 and len(head) >= 80 else 0
        backing = None
        if bf_offset:
            f.seek(bf_offset)
            backing = f.read(bf_size).decode("utf-8")
    return LayerHeader(version, size, 1 << cluster_bits, backing, l1_size, l1_offset, bool(incompatible & _EXTENDED_L2))


def has_own_data(path: Path) -> bool:
    """True if any guest cluster is allocated (or marked zero) in this file itself, not in its backing chain.

    Reads the L1 table and the L2 tables it points at: a small overlay has few of them.
    """
    header = read_header(path)
    with open(path, "rb") as f:
        f.seek(header.l1_offset)
        l1 = f.read(header.l1_size * 8)
        l2_bytes = header.cluster_size * (2 if header.extended_l2 else 1)
        for (entry,) in struct.iter_unpack(">Q", l1):
            l2_offset = entry & _OFFSET_MASK
            if not l2_offset:
                continue
            f.seek(l2_offset)
            if any(f.read(l2_bytes)):
                return True
    return False


def backing_chain(path: Path, *, limit: int) -> list[Path]:
    """``path`` and the files under it, top first, as far as qcow2 headers lead (at most ``limit`` files).

    Relative backing names are relative to the directory of the file naming them, as for qemu.
    The last element is the first file that is not qcow2 or has no backing file.
    """
    chain = [Path(path)]
    while len(chain) < limit:
        try:
            header = read_header(chain[-1])
        except ValueError:
            break
        if header.backing_name is None:
            break
        chain.append(chain[-1].parent / header.backing_name)
    return chain
