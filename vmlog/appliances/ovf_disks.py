"""Disks as OVF packages and Vagrant boxes carry them: VMDK descriptors and their extents, made whole safely.

A VMDK descriptor file (``twoGbMaxExtentSparse``, Packer's default for VMware boxes; ``monolithicFlat``
and ``twoGbMaxExtentFlat`` for preallocated disks) names other files as its extents, and a hostile one
could name ``/etc/shadow`` or ``/dev/sda``. qemu-img never reads the package's own descriptor: it is
parsed here, every extent must be a file taken out of the same package (``members``), each sparse
extent's header must agree with the descriptor, and a new descriptor naming only those files, under
the names vmlog gave them, is what qemu-img converts into one qcow2. That qcow2 then enters the store
through the image gate like any other disk.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hypervisors import qemu_img
from hypervisors.errors import HypervisorError
from vmlog.errors import IntegrityError
from vmlog.store.image_gate import DEFAULT_MAX_VIRTUAL_SIZE, HostileImage, printable

MAX_DESCRIPTOR_BYTES = 64 << 10
MAX_EXTENTS = 1024
SECTOR = 512
# createType -> the extent kinds its descriptor may list
CREATE_TYPES = {
    "twogbmaxextentsparse": ("SPARSE",),
    "monolithicflat": ("FLAT", "ZERO"),
    "twogbmaxextentflat": ("FLAT", "ZERO"),
}
_EXTENT_LINE = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$')
_KEY_LINE = re.compile(r'^([A-Za-z][A-Za-z0-9_.]*)\s*=\s*"?([^"]*)"?\s*$')


@dataclass(frozen=True)
class Extent:
    access: str  # RW, RDONLY
    sectors: int
    kind: str  # SPARSE, FLAT, ZERO
    file_name: str  # as the descriptor names it ("" for ZERO)
    offset: int = 0  # FLAT: where the data starts in the file, in sectors


@dataclass(frozen=True)
class VmdkDescriptor:
    create_type: str
    extents: tuple[Extent, ...]
    adapter_type: str = "ide"

    @property
    def virtual_size(self) -> int:
        return sum(e.sectors for e in self.extents) * SECTOR


def _bad(message: str) -> IntegrityError:
    return IntegrityError(f"VMDK descriptor: {message}", fix="the box or package is damaged or not one vmlog accepts")


def _hostile(message: str, reason: str) -> HostileImage:
    """A descriptor reaching for files the package does not hold: refused as the image gate refuses."""
    return HostileImage(f"VMDK descriptor: {message}", reason=reason)


def parse_descriptor(data: bytes) -> VmdkDescriptor:
    """Read a VMDK descriptor file; refuse delta disks, unknown types and extents other than the type's."""
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise _bad("larger than a descriptor can be")
    keys: dict[str, str] = {}
    extents: list[Extent] = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _EXTENT_LINE.match(line)
        if match:
            access, sectors, kind, name, offset = match.groups()
            if access == "NOACCESS" or (kind != "ZERO" and not name):
                raise _bad(f"extent line {printable(line)!r} is not a readable extent")
            extents.append(Extent(access, int(sectors), kind, name or "", int(offset or 0)))
            continue
        match = _KEY_LINE.match(line)
        if match:
            keys[match.group(1).lower()] = match.group(2)
    create_type = keys.get("createtype", "")
    if create_type.lower() not in CREATE_TYPES:
        raise _bad(f"createType {printable(create_type)!r} is not a split or flat disk vmlog reads")
    if keys.get("parentfilenamehint") or keys.get("parentcid", "ffffffff").lower() != "ffffffff":
        raise _hostile("it is a delta disk on a parent disk", "backing-file")
    allowed = CREATE_TYPES[create_type.lower()]
    if not extents or len(extents) > MAX_EXTENTS or any(e.kind not in allowed for e in extents):
        raise _bad(f"a {create_type} descriptor must list 1 to {MAX_EXTENTS} extents of kind {'/'.join(allowed)}")
    return VmdkDescriptor(create_type, tuple(extents), keys.get("ddb.adaptertype", "ide") or "ide")


def extent_member(descriptor_member: str, file_name: str) -> str:
    """The package member an extent names: beside its descriptor, never outside the package."""
    parts = [p for p in PurePosixPath(file_name).parts if p not in ("", ".")]
    if not parts or file_name.startswith("/") or ".." in parts or ":" in file_name or "\\" in file_name:
        raise _hostile(f"its extents must be files of the package; {printable(file_name)!r} is not", "vmdk-extents")
    parent = PurePosixPath(descriptor_member).parent
    return str(parent.joinpath(*parts)) if str(parent) != "." else "/".join(parts)


def _check_sparse_extent(path: Path, extent: Extent) -> None:
    with open(path, "rb") as fh:
        head = fh.read(80)
    if len(head) < 80 or head[:4] != b"KDMV":
        raise _bad(f"extent {printable(extent.file_name)!r} is not a sparse VMDK extent")
    version, _flags, capacity = struct.unpack("<IIQ", head[4:20])
    compression = struct.unpack("<H", head[77:79])[0]
    if version not in (1, 2, 3) or capacity != extent.sectors or compression:
        raise _bad(f"extent {printable(extent.file_name)!r} does not match its descriptor line")


def make_whole(
    descriptor_member: str,
    members: dict[str, Path],
    work: Path,
    *,
    max_virtual_size: int = DEFAULT_MAX_VIRTUAL_SIZE,
) -> Path:
    """Convert the split or flat VMDK whose descriptor is ``descriptor_member`` into one qcow2 in ``work``.

    ``members`` maps every file taken out of the package to where it was written (all inside ``work``).
    """
    descriptor = parse_descriptor(members[descriptor_member].read_bytes())
    if not 0 < descriptor.virtual_size <= max_virtual_size:
        raise _bad(f"virtual size {descriptor.virtual_size} is over the limit of {max_virtual_size}")
    lines = []
    for extent in descriptor.extents:
        if extent.kind == "ZERO":
            lines.append(f"{extent.access} {extent.sectors} ZERO")
            continue
        name = extent_member(descriptor_member, extent.file_name)
        path = members.get(name)
        if path is None or path.parent != work:
            raise _hostile(f"its extents must be files of the package; {printable(extent.file_name)!r} is not",
                           "vmdk-extents")  # fmt: skip
        if extent.kind == "SPARSE":
            _check_sparse_extent(path, extent)
            lines.append(f'{extent.access} {extent.sectors} SPARSE "{path.name}"')
        else:
            if path.stat().st_size < (extent.offset + extent.sectors) * SECTOR:
                raise _bad(f"flat extent {printable(extent.file_name)!r} is shorter than its descriptor says")
            lines.append(f'{extent.access} {extent.sectors} FLAT "{path.name}" {extent.offset}')
    clean = work / "whole-disk.vmdk"
    adapter = descriptor.adapter_type if re.fullmatch(r"[a-z]+", descriptor.adapter_type) else "ide"
    clean.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="{descriptor.create_type}"\n\n# Extent description\n' + "\n".join(lines)
        + f'\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = "{adapter}"\n'
    )
    whole = work / "whole-disk.qcow2"
    try:
        qemu_img.convert(clean, whole, src_format="vmdk", dest_format="qcow2", limits=True)
        size = qemu_img.info(whole, "qcow2").get("virtual-size")
    except HypervisorError as exc:
        raise _bad(f"its extents could not be read: {printable(exc.message, 200)}") from exc
    finally:
        clean.unlink(missing_ok=True)
    if size != descriptor.virtual_size:
        raise _bad(f"the joined disk has {size} bytes, the descriptor says {descriptor.virtual_size}")
    return whole
