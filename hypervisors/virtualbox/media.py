"""Reading VirtualBox's disk files without VirtualBox: does a differencing image hold data of its own?

VirtualBox names a differencing image after its base's format (``Snapshots/{uuid}.vdi`` on a VDI
base) and names the parent by UUID, so qemu-img cannot open the chain. A VDI says in its header how
many blocks it has allocated (VDIHEADER1: ``cBlocksAllocated`` at 0x184, after the signature
0xBEDA107F at 0x40), which is all vmlog needs to know; images qemu-img can read alone (qcow2, VMDK)
are asked through ``qemu-img map``. The format is read from the content, never from the name.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hypervisors import qemu_img

VDI_SIGNATURE_OFFSET = 0x40
VDI_SIGNATURE = 0xBEDA107F
VDI_BLOCKS_ALLOCATED_OFFSET = 0x184
QCOW2_MAGIC = b"QFI\xfb"
VMDK_SPARSE_MAGIC = b"KDMV"
VMDK_DESCRIPTOR = b"# Disk DescriptorFile"


def sniff_format(head: bytes) -> str | None:
    """``vdi``, ``qcow2`` or ``vmdk`` from a file's first bytes; None if none of them."""
    if len(head) >= VDI_BLOCKS_ALLOCATED_OFFSET + 4 and (
        struct.unpack_from("<I", head, VDI_SIGNATURE_OFFSET)[0] == VDI_SIGNATURE
    ):
        return "vdi"
    if head.startswith(QCOW2_MAGIC):
        return "qcow2"
    if head.startswith(VMDK_SPARSE_MAGIC) or head.lstrip().startswith(VMDK_DESCRIPTOR):
        return "vmdk"
    return None


def vdi_blocks_allocated(path: Path) -> int:
    """The number of blocks a VDI has allocated (0 for a fresh differencing image)."""
    with Path(path).open("rb") as f:
        head = f.read(0x200)
    if sniff_format(head) != "vdi":
        raise ValueError(f"{path} is not a VDI")
    return int(struct.unpack_from("<I", head, VDI_BLOCKS_ALLOCATED_OFFSET)[0])


def top_has_data(path: Path) -> bool:
    """True if the differencing image holds data of its own (or cannot be read: then assume it does)."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(0x200)
    except OSError:
        return True
    fmt = sniff_format(head)
    if fmt == "vdi":
        return struct.unpack_from("<I", head, VDI_BLOCKS_ALLOCATED_OFFSET)[0] > 0
    if fmt is None:
        return True
    return qemu_img.top_has_data(path, fmt)
