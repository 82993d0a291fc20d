"""The one gate every disk image from outside passes before qemu-img or QEMU opens it.

Catalog images, box members, OVA disks, local files given to ``vml project new --image`` and bases
fetched for ``vml state import`` are untrusted: a qcow2 may name ``/etc/shadow`` as its backing file,
a VMDK descriptor may name a host file as its extent, a "qcow2" may be a gzip bomb. The format is
read from the magic bytes (never probed by qemu-img), the header is parsed in Python
(``image_headers``), and only then does qemu-img look, through ``--image-opts`` with the file
protocol and no backing, so it cannot open anything but the one file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hypervisors import qemu_img
from hypervisors.errors import HypervisorError
from vmlog.errors import InvalidInput
from vmlog.store.image_headers import (
    ARCHIVE_KINDS,
    ARCHIVE_MAGIC,
    FACTS,
    QCOW2_MAGIC,
    VDI_SIGNATURE,
    VHDX_MAGIC,
    VMDK3_MAGIC,
    VMDK4_MAGIC,
    VPC_COOKIE,
    HeaderProblem,
    is_vmdk_descriptor,
    read_head,
    read_tail,
)

__all__ = [
    "ARCHIVE_KINDS", "DISK_FORMATS", "GatedImage", "HostileImage", "check_entering", "check_image", "detect_format",
    "printable",
]

DEFAULT_MAX_VIRTUAL_SIZE = 16 << 40  # 16 TiB: more than any appliance, far less than a qcow2 can claim
DISK_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc")
# Catalog names of disk formats -> the format the header must show (``hdd``, ``img``, ``iso`` are raw bytes).
DECLARED = {"raw": "raw", "hdd": "raw", "img": "raw", "iso": "raw", **{f: f for f in DISK_FORMATS}}
_ISO_OFFSET = 0x8001


class HostileImage(InvalidInput):
    """A disk image from outside that could reach other files or resources (backing file, data file, VMDK
    extents, a format other than declared, an archive, an absurd size); refused before any tool opened it."""

    exit_code = 18

    def __init__(self, message: str, *, reason: str, fix: str | None = None) -> None:
        super().__init__(
            message if message.endswith("; refused") else f"{message}; refused",
            fix=fix or "use an image that stands alone in the declared format; tell its publisher what was refused",
        )
        self.reason = reason


@dataclass(frozen=True)
class GatedImage:
    """An image that passed the gate: its format (as qemu-img must be told) and its virtual size in bytes."""

    format: str
    virtual_size: int


def printable(text: str, limit: int = 120) -> str:
    """A name from outside as it may appear in a message: no control characters, bounded length."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def detect_format(path: Path) -> str:
    """The format ``path``'s magic bytes show: a disk format, ``vmdk-descriptor``, ``iso``, or an archive kind.

    Never asks qemu-img. Bytes that match nothing are ``raw``.
    """
    head = read_head(Path(path), _ISO_OFFSET + 8)
    if head[:4] == QCOW2_MAGIC:
        return "qcow2"
    if head[:4] in (VMDK4_MAGIC, VMDK3_MAGIC):
        return "vmdk"
    if len(head) >= 0x44 and int.from_bytes(head[0x40:0x44], "little") == VDI_SIGNATURE:
        return "vdi"
    if head[:8] == VHDX_MAGIC:
        return "vhdx"
    if head[:8] == VPC_COOKIE or read_tail(Path(path))[:8] == VPC_COOKIE:
        return "vpc"
    for magic, offset, kind in ARCHIVE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if kind == "tar" and head[:100].split(b"\0", 1)[0].lower().endswith(b".ovf"):
                return "ova"
            return kind
    if is_vmdk_descriptor(head):
        return "vmdk-descriptor"
    if head[_ISO_OFFSET : _ISO_OFFSET + 5] == b"CD001":
        return "iso"
    return "raw"


def check_image(
    path: Path, fmt: str, *, max_virtual_size: int = DEFAULT_MAX_VIRTUAL_SIZE, what: str | None = None
) -> GatedImage:
    """Refuse ``path`` unless it is a standalone ``fmt`` image of a sane size; only then let qemu-img look.

    ``fmt`` is the declared format (a catalog name such as ``hdd`` is accepted); ``what`` names the image
    in messages. Raises :class:`HostileImage` (``reason`` says which check failed).
    """
    path = Path(path)
    label = printable(what or path.name)
    declared = DECLARED.get(fmt)
    if declared is None:
        raise HostileImage(f"{label}: {printable(fmt)!r} is not a disk image format", reason="format")
    detected = detect_format(path)
    if detected in ARCHIVE_KINDS:
        raise HostileImage(f"{label} is a {detected} archive, not a {fmt} disk image", reason="archive")
    shown = {"iso": "raw", "vmdk-descriptor": "vmdk"}.get(detected, detected)
    if shown != declared:
        raise HostileImage(f"{label} is declared {fmt} but its header says {detected}", reason="format-mismatch")
    try:
        facts = FACTS[declared](path)
    except HeaderProblem as problem:
        raise HostileImage(f"{label} {problem.text}", reason=problem.reason) from None
    if facts.virtual_size is not None:
        _check_size(label, facts.virtual_size, max_virtual_size)
    size = _qemu_view(path, declared, label, facts.virtual_size if declared in ("qcow2", "vmdk", "vdi") else None)
    _check_size(label, size, max_virtual_size)
    return GatedImage(declared, size)


def _check_size(label: str, size: int, limit: int) -> None:
    if not 0 < size <= limit:
        raise HostileImage(
            f"{label} claims a virtual size of {size} bytes (the limit is {limit})", reason="virtual-size"
        )


def _qemu_view(path: Path, fmt: str, label: str, expected_size: int | None) -> int:
    """qemu-img's look through ``--image-opts`` (this file only, no backing); it must agree with the header."""
    try:
        info = qemu_img.isolated_info(path, fmt)
    except HypervisorError as exc:
        raise HostileImage(
            f"{label} is not a readable {fmt} image: {printable(exc.message, 200)}", reason="unreadable"
        ) from None
    specific = (info.get("format-specific") or {}).get("data") or {}
    if info.get("format") != fmt:
        raise HostileImage(f"{label}: qemu-img reads it as {info.get('format')}, not {fmt}", reason="format-mismatch")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise HostileImage(f"{label} names a backing file", reason="backing-file")
    if specific.get("data-file"):
        raise HostileImage(f"{label} names an external data file", reason="data-file")
    own = str(path.resolve())
    for extent in specific.get("extents") or ():
        if str(Path(str(extent.get("filename", ""))).resolve()) != own:
            raise HostileImage(f"{label} has an extent in another file", reason="vmdk-extents")
    size = info.get("virtual-size")
    if not isinstance(size, int) or (expected_size is not None and size != expected_size):
        raise HostileImage(f"{label}: qemu-img sees a virtual size other than its header's", reason="virtual-size")
    return size


BOX_KINDS = ("tar", "gzip", "bzip2", "xz")


def check_entering(path: Path, fmt: str, *, what: str) -> GatedImage | None:
    """The store's check of a file about to enter it as ``fmt``: disk images pass :func:`check_image`;
    a Vagrant box must be a (compressed) tar and an OVA a tar, whose disks are gated when taken out."""
    if fmt in DECLARED:
        return check_image(path, fmt, what=what)
    detected = detect_format(path)
    if fmt == "box" and detected not in BOX_KINDS:
        raise HostileImage(f"{printable(what)} is declared a Vagrant box but is {detected}", reason="format-mismatch")
    if fmt == "ova" and detected not in ("ova", "tar"):
        raise HostileImage(f"{printable(what)} is declared an OVA but is {detected}", reason="format-mismatch")
    return None
