"""Reads and vets the header of an untrusted qcow2 file in Python, before qemu-img ever opens it.

qemu-img follows a backing file name (host paths, ``json:`` objects) and opens an external data
file as soon as it opens the image, so those fields are checked here first from the raw header:
only the exact expected backing name and format are accepted, and any external data file is
refused. qemu-img then looks again (``info`` without the chain, under resource limits).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from vmlog.bundles.errors import BundleRejected

QCOW2_MAGIC = b"QFI\xfb"
_INCOMPAT_DIRTY = 1 << 0
_INCOMPAT_CORRUPT = 1 << 1
_INCOMPAT_DATA_FILE = 1 << 2
_INCOMPAT_COMPRESSION = 1 << 3
_INCOMPAT_EXTL2 = 1 << 4
_KNOWN_INCOMPAT = _INCOMPAT_DIRTY | _INCOMPAT_CORRUPT | _INCOMPAT_DATA_FILE | _INCOMPAT_COMPRESSION | _INCOMPAT_EXTL2
_EXT_END = 0x00000000
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_DATA_FILE = 0x44415441
MAX_HEADER_EXTENSIONS = 64


@dataclass(frozen=True)
class Qcow2Header:
    version: int
    virtual_size: int
    cluster_bits: int
    backing_name: str | None
    backing_format: str | None


def read_header(path: Path, what: str) -> Qcow2Header:
    """Parse ``path``'s qcow2 header; raise :class:`BundleRejected` on anything unexpected."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
        if len(head) < 104 or head[:4] != QCOW2_MAGIC:
            raise BundleRejected("not-qcow2", f"{what} is not a qcow2 image")
        (version, backing_off, backing_len, cluster_bits, size) = struct.unpack(">IQIIQ", head[4:32])
        if version not in (2, 3):
            raise BundleRejected("qcow2-version", f"{what} has unsupported qcow2 version {version}")
        if not 9 <= cluster_bits <= 21:
            raise BundleRejected("qcow2-header", f"{what} has an invalid cluster size (2^{cluster_bits})")
        incompat = 0
        header_length = 72
        if version == 3:
            incompat, _compat, _autoclear, _refcount_order, header_length = struct.unpack(">QQQII", head[72:104])
            if header_length < 104 or header_length > 4096:
                raise BundleRejected("qcow2-header", f"{what} has an invalid header length")
        if incompat & _INCOMPAT_DATA_FILE:
            raise BundleRejected("data-file", f"{what} declares an external data file")
        if incompat & ~_KNOWN_INCOMPAT:
            raise BundleRejected("qcow2-header", f"{what} needs unknown qcow2 features ({incompat:#x})")
        if incompat & (_INCOMPAT_DIRTY | _INCOMPAT_CORRUPT):
            raise BundleRejected("qcow2-header", f"{what} is marked dirty or corrupt")

        backing_format = None
        data_file = None
        if version == 3:
            pos = header_length
            for _ in range(MAX_HEADER_EXTENSIONS):
                if pos + 8 > len(head):
                    raise BundleRejected("qcow2-header", f"{what} has header extensions past 4 KiB")
                ext_type, ext_len = struct.unpack(">II", head[pos : pos + 8])
                if ext_type == _EXT_END:
                    break
                body = head[pos + 8 : pos + 8 + ext_len]
                if len(body) != ext_len:
                    raise BundleRejected("qcow2-header", f"{what} has a truncated header extension")
                if ext_type == _EXT_BACKING_FORMAT:
                    backing_format = body.decode("ascii", "replace")
                elif ext_type == _EXT_DATA_FILE:
                    data_file = body
                pos += 8 + ((ext_len + 7) & ~7)
            else:
                raise BundleRejected("qcow2-header", f"{what} has too many header extensions")
        if data_file is not None:
            raise BundleRejected("data-file", f"{what} names an external data file")

        backing_name = None
        if backing_off:
            if backing_len > 1023:
                raise BundleRejected("backing", f"{what} has an overlong backing file name")
            fh.seek(backing_off)
            raw = fh.read(backing_len)
            if len(raw) != backing_len:
                raise BundleRejected("truncated", f"{what} is truncated (backing file name)")
            backing_name = raw.decode("utf-8", "replace")
    return Qcow2Header(version, size, cluster_bits, backing_name, backing_format)
