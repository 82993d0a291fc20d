"""Python readers of disk image headers (magic bytes, qcow2, VMDK, VDI, VHD): nothing here runs qemu-img.

An image from outside is judged by these readers before any tool that might follow a name inside it
(a qcow2 backing file, a VMDK extent or parent, a data file) sees it. They read a bounded number of
bytes, never follow anything, and report what the header declares; ``image_gate`` decides.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

QCOW2_MAGIC = b"QFI\xfb"
VMDK4_MAGIC = b"KDMV"
VMDK3_MAGIC = b"COWD"
VDI_SIGNATURE = 0xBEDA107F
VHDX_MAGIC = b"vhdxfile"
VPC_COOKIE = b"conectix"
MAX_VMDK_DESCRIPTOR = 1 << 20  # qemu's own cap on an embedded descriptor

# (magic, offset, kind) of the archive and compression formats a caller must refuse or unpack.
ARCHIVE_MAGIC = (
    (b"\x1f\x8b", 0, "gzip"),
    (b"\xfd7zXZ\x00", 0, "xz"),
    (b"\x28\xb5\x2f\xfd", 0, "zstd"),
    (b"BZh", 0, "bzip2"),
    (b"ustar", 257, "tar"),
)
ARCHIVE_KINDS = ("tar", "ova", "gzip", "xz", "zstd", "bzip2")

_QCOW2_INCOMPAT_DIRTY = 1 << 0
_QCOW2_INCOMPAT_CORRUPT = 1 << 1
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_KNOWN_INCOMPAT = 0b11111
_QCOW2_EXT_DATA_FILE = 0x44415441
_QCOW2_EXT_END = 0
_QCOW2_MAX_EXTENSIONS = 64


class HeaderProblem(ValueError):
    """What a header declares that an image from outside may not; ``reason`` is a short stable tag."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class HeaderFacts:
    """What a header says: the format, its virtual size (None where only qemu-img knows) and sub-kind."""

    format: str
    virtual_size: int | None
    subformat: str = ""
    details: dict[str, str] = field(default_factory=dict)


def read_head(path: Path, size: int = 65536) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def read_tail(path: Path, size: int = 512) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        if end < size:
            return b""
        fh.seek(end - size)
        return fh.read(size)


def is_vmdk_descriptor(head: bytes) -> bool:
    """A text VMDK descriptor: qemu opens the extents (other files) it names."""
    text = head[:4096].lstrip()
    lowered = text.lower()
    return lowered.startswith(b"# disk descriptorfile") or (
        b"createtype" in lowered[:1024] and b"version" in lowered[:1024]
    )


def declared_virtual_size(head: bytes) -> tuple[str, int] | None:
    """(format, virtual size) as the first bytes of a qcow2, sparse VMDK or VDI declare it; None for others.

    Read from a member's first block while it is unpacked, before the rest is written (no file yet).
    """
    if head[:4] == QCOW2_MAGIC and len(head) >= 32:
        return "qcow2", struct.unpack(">Q", head[24:32])[0]
    if head[:4] == VMDK4_MAGIC and len(head) >= 20:
        return "vmdk", struct.unpack("<Q", head[12:20])[0] * 512
    if len(head) >= 0x178 and struct.unpack("<I", head[0x40:0x44])[0] == VDI_SIGNATURE:
        return "vdi", struct.unpack("<Q", head[0x170:0x178])[0]
    return None


def qcow2_facts(path: Path) -> HeaderFacts:
    """Refuse a backing file, an external data file, unknown features; return the virtual size."""
    head = read_head(path, 4096)
    if len(head) < 72 or head[:4] != QCOW2_MAGIC:
        raise HeaderProblem("not-qcow2", "is not a qcow2 image")
    version, backing_off, backing_len, cluster_bits, size = struct.unpack(">IQIIQ", head[4:32])
    if version not in (2, 3):
        raise HeaderProblem("qcow2-version", f"has unsupported qcow2 version {version}")
    if not 9 <= cluster_bits <= 21:
        raise HeaderProblem("qcow2-header", f"has an invalid cluster size (2^{cluster_bits})")
    if backing_off or backing_len:
        raise HeaderProblem("backing-file", "names a backing file (it would read another file)")
    if version == 3:
        if len(head) < 104:
            raise HeaderProblem("qcow2-header", "has a truncated qcow2 v3 header")
        incompat, _compat, _autoclear, _order, header_length = struct.unpack(">QQQII", head[72:104])
        if incompat & _QCOW2_INCOMPAT_DATA_FILE:
            raise HeaderProblem("data-file", "declares an external data file")
        if incompat & ~_QCOW2_KNOWN_INCOMPAT:
            raise HeaderProblem("qcow2-header", f"needs unknown qcow2 features ({incompat:#x})")
        if incompat & (_QCOW2_INCOMPAT_DIRTY | _QCOW2_INCOMPAT_CORRUPT):
            raise HeaderProblem("qcow2-header", "is marked dirty or corrupt")
        if not 104 <= header_length <= 4096:
            raise HeaderProblem("qcow2-header", "has an invalid header length")
        _check_qcow2_extensions(head, header_length)
    return HeaderFacts("qcow2", size, f"v{version}")


def _check_qcow2_extensions(head: bytes, pos: int) -> None:
    for _ in range(_QCOW2_MAX_EXTENSIONS):
        if pos + 8 > len(head):
            raise HeaderProblem("qcow2-header", "has header extensions past 4 KiB")
        ext_type, ext_len = struct.unpack(">II", head[pos : pos + 8])
        if ext_type == _QCOW2_EXT_END:
            return
        if ext_type == _QCOW2_EXT_DATA_FILE:
            raise HeaderProblem("data-file", "names an external data file")
        if pos + 8 + ext_len > len(head):
            raise HeaderProblem("qcow2-header", "has a truncated header extension")
        pos += 8 + ((ext_len + 7) & ~7)
    raise HeaderProblem("qcow2-header", "has too many header extensions")


def vmdk_facts(path: Path) -> HeaderFacts:
    """Accept only a single-file sparse VMDK (monolithicSparse, streamOptimized) naming no other file."""
    head = read_head(path, 512)
    if head[:4] == VMDK3_MAGIC:
        raise HeaderProblem("vmdk-kind", "is an old ESX (COWD) VMDK, which is not accepted")
    if head[:4] != VMDK4_MAGIC:
        if is_vmdk_descriptor(read_head(path, 4096)):
            raise HeaderProblem("vmdk-extents", "is a VMDK descriptor naming other files (extents)")
        raise HeaderProblem("not-vmdk", "is not a VMDK image")
    if len(head) < 77:
        raise HeaderProblem("truncated", "has a truncated VMDK header")
    version, _flags, capacity, _grain, desc_offset, desc_size = struct.unpack("<IIQQQQ", head[4:44])
    if version not in (1, 2, 3):
        raise HeaderProblem("vmdk-header", f"has unsupported VMDK version {version}")
    if capacity == 0:  # qemu then opens the embedded descriptor's extents instead of this file
        raise HeaderProblem("vmdk-extents", "is a sparse VMDK of capacity 0 whose descriptor names the extents")
    subformat = "monolithicSparse"
    if desc_offset and desc_size:
        if desc_size << 9 > MAX_VMDK_DESCRIPTOR:
            raise HeaderProblem("vmdk-header", "has an oversized embedded descriptor")
        with open(path, "rb") as fh:
            fh.seek(desc_offset << 9)
            text = fh.read(desc_size << 9).split(b"\0", 1)[0].decode("ascii", "replace")
        subformat = _check_embedded_descriptor(text)
    return HeaderFacts("vmdk", capacity * 512, subformat)


_CREATE_TYPE = re.compile(r'^\s*createType\s*=\s*"?([A-Za-z]+)"?', re.MULTILINE)
_PARENT_HINT = re.compile(r"^\s*parentFileNameHint\s*=", re.MULTILINE | re.IGNORECASE)
_PARENT_CID = re.compile(r"^\s*parentCID\s*=\s*([0-9a-fA-F]+)", re.MULTILINE)
_EXTENT = re.compile(r"^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)", re.MULTILINE)


def _check_embedded_descriptor(text: str) -> str:
    match = _CREATE_TYPE.search(text)
    kind = match.group(1) if match else "monolithicSparse"
    if kind not in ("monolithicSparse", "streamOptimized"):
        raise HeaderProblem("vmdk-extents", f"is a {kind} VMDK (it names other files); only single-file VMDKs pass")
    if _PARENT_HINT.search(text):
        raise HeaderProblem("backing-file", "names a parent disk (parentFileNameHint)")
    parent = _PARENT_CID.search(text)
    if parent and parent.group(1).lower() != "ffffffff":
        raise HeaderProblem("backing-file", "is a delta VMDK on a parent disk")
    extents = _EXTENT.findall(text)
    if len(extents) > 1 or any(kind.upper() != "SPARSE" for _mode, kind in extents):
        raise HeaderProblem("vmdk-extents", "has a descriptor naming more than its own sparse extent")
    return kind


def vdi_facts(path: Path) -> HeaderFacts:
    head = read_head(path, 512)
    if len(head) < 0x178 or struct.unpack("<I", head[0x40:0x44])[0] != VDI_SIGNATURE:
        raise HeaderProblem("not-vdi", "is not a VDI image")
    image_type = struct.unpack("<I", head[0x4C:0x50])[0]
    if image_type not in (1, 2):  # 3 undo and 4 differencing images live on a parent
        raise HeaderProblem("backing-file", f"is a VDI of type {image_type} (undo/differencing, needs a parent)")
    return HeaderFacts("vdi", struct.unpack("<Q", head[0x170:0x178])[0], "dynamic" if image_type == 1 else "fixed")


def vpc_facts(path: Path) -> HeaderFacts:
    head = read_head(path, 512)
    footer = head if head[:8] == VPC_COOKIE else read_tail(path)
    if footer[:8] != VPC_COOKIE or len(footer) < 64:
        raise HeaderProblem("not-vpc", "is not a VHD (vpc) image")
    current_size, = struct.unpack(">Q", footer[48:56])
    disk_type, = struct.unpack(">I", footer[60:64])
    if disk_type == 4:
        raise HeaderProblem("backing-file", "is a differencing VHD (it names a parent disk)")
    if disk_type not in (2, 3):
        raise HeaderProblem("vpc-header", f"is a VHD of unknown disk type {disk_type}")
    return HeaderFacts("vpc", current_size, "fixed" if disk_type == 2 else "dynamic")


def raw_facts(path: Path) -> HeaderFacts:
    return HeaderFacts("raw", path.stat().st_size)


def vhdx_facts(path: Path) -> HeaderFacts:
    """VHDX keeps its size in a metadata region; qemu-img (with no backing, it has none) reports it."""
    if read_head(path, 8) != VHDX_MAGIC:
        raise HeaderProblem("not-vhdx", "is not a VHDX image")
    return HeaderFacts("vhdx", None)


FACTS = {"qcow2": qcow2_facts, "vmdk": vmdk_facts, "vdi": vdi_facts, "vpc": vpc_facts, "raw": raw_facts,
         "vhdx": vhdx_facts}
