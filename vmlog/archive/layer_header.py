"""The qcow2 headers of archived layers: re-pointing a layer at its base's member path, and vetting it on the way in.

In the archive a layer's backing file name is a path inside the archive (``../base/<sha>.<fmt>``
for the lowest layer, the parent layer's plain file name otherwise), so the unpacked files form a
chain ``qemu-img`` follows by itself. The name is rewritten in the copy of the first cluster that
goes into the archive, never in the project's own file, exactly as ``qemu-img rebase -u`` would
write it: at the same offset, inside the first cluster, which holds nothing else after it.

A reader takes the first bytes of each layer from the stream and checks them in Python before any
file exists: qcow2 magic, version, no external data file, no unknown incompatible feature, and a
backing name and format that are exactly what the manifest says.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from vmlog.archive.errors import ArchiveRejected

MAGIC = b"QFI\xfb"
HEAD_BYTES = 64 << 10  # a reader vets this much of each layer's start (header, extensions, backing name)
_DATA_FILE_BIT = 1 << 2
_KNOWN_INCOMPAT = 0b11111
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_DATA_FILE = 0x44415441


@dataclass(frozen=True)
class LayerHead:
    virtual_size: int
    cluster_size: int
    backing_name: str | None
    backing_format: str | None


def parse_head(head: bytes, what: str) -> LayerHead:
    """The facts of a qcow2 header in ``head``; :class:`ArchiveRejected` on anything unexpected."""
    if len(head) < 104 or head[:4] != MAGIC:
        raise ArchiveRejected("not-qcow2", f"{what} is not a qcow2 image")
    version, backing_off, backing_len, cluster_bits, size = struct.unpack(">IQIIQ", head[4:32])
    if version not in (2, 3) or not 9 <= cluster_bits <= 21:
        raise ArchiveRejected("qcow2-header", f"{what} has an unsupported qcow2 version or cluster size")
    backing_format = None
    if version == 3:
        incompat, _compat, _autoclear, _order, header_length = struct.unpack(">QQQII", head[72:104])
        if incompat & _DATA_FILE_BIT:
            raise ArchiveRejected("data-file", f"{what} declares an external data file")
        if incompat & ~_KNOWN_INCOMPAT or incompat & 0b11:
            raise ArchiveRejected("qcow2-header", f"{what} is dirty, corrupt or needs unknown qcow2 features")
        if not 104 <= header_length <= 4096:
            raise ArchiveRejected("qcow2-header", f"{what} has an invalid header length")
        backing_format = _extensions(head, header_length, what)
    backing_name = None
    if backing_off:
        if backing_len > 1023 or backing_off + backing_len > min(len(head), 1 << cluster_bits):
            raise ArchiveRejected("backing", f"{what} has its backing file name outside its first cluster")
        backing_name = head[backing_off : backing_off + backing_len].decode("utf-8", "replace")
    return LayerHead(size, 1 << cluster_bits, backing_name, backing_format)


def _extensions(head: bytes, pos: int, what: str) -> str | None:
    backing_format = None
    for _ in range(64):
        if pos + 8 > len(head):
            break
        ext_type, ext_len = struct.unpack(">II", head[pos : pos + 8])
        if ext_type == 0:
            return backing_format
        if ext_type == _EXT_DATA_FILE:
            raise ArchiveRejected("data-file", f"{what} names an external data file")
        if ext_type == _EXT_BACKING_FORMAT:
            backing_format = head[pos + 8 : pos + 8 + ext_len].decode("ascii", "replace")
        pos += 8 + ((ext_len + 7) & ~7)
    raise ArchiveRejected("qcow2-header", f"{what} has too many or overlong header extensions")


def check_head(head: bytes, what: str, *, backing: str | None, backing_format: str | None,
               virtual_size: int) -> LayerHead:
    """Refuse a layer whose header differs from what the manifest says (backing name, its format, size)."""
    facts = parse_head(head, what)
    if facts.backing_name != backing:
        shown = (facts.backing_name or "nothing")[:120]
        wanted = backing or "nothing"
        raise ArchiveRejected("backing", f"{what} backs onto {shown!r}, not {wanted!r} inside the archive")
    if backing is not None and facts.backing_format != backing_format:
        raise ArchiveRejected("backing", f"{what} does not give its backing file's format as {backing_format}")
    if facts.virtual_size != virtual_size:
        raise ArchiveRejected("qcow2-header", f"{what}'s virtual size is not the manifest's")
    return facts


def repointed_head(path: Path, backing: str) -> bytes:
    """The first cluster of layer ``path`` with ``backing`` as its backing file name (the file is not changed)."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    facts = parse_head(head, path.name)
    cluster = head[: facts.cluster_size]
    offset = struct.unpack(">Q", cluster[8:16])[0]
    old_len = struct.unpack(">I", cluster[16:20])[0]
    name = backing.encode("utf-8")
    if not offset or offset + max(old_len, len(name)) > len(cluster):
        raise ValueError(f"{path.name}: no room for the backing name {backing!r} in its first cluster")
    if any(cluster[offset + old_len : offset + len(name)]):
        raise ValueError(f"{path.name}: the bytes after its backing name are in use")
    body = bytearray(cluster)
    body[16:20] = struct.pack(">I", len(name))
    body[offset : offset + max(old_len, len(name))] = name.ljust(max(old_len, len(name)), b"\0")
    return bytes(body)
