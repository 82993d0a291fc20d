"""Safe unpacking of Vagrant ``.box`` files: a tar (maybe compressed) of metadata.json and the disks.

A box is untrusted input: only regular members are read, into files we create under names we
choose; absolute paths, ``..``, links and devices are refused, sizes and member counts are capped so a
decompression bomb cannot fill the disk, and runs of zeros are left as holes so a sparse disk stays
sparse. Which members are the disks depends on the provider and the layout the box was made with:
vagrant-libvirt's v1 (``box.img``) and v2 (a ``disks`` array), Packer's VirtualBox boxes (``box.ovf``
naming the VMDK) and VMware boxes (a VMDK that may be split into extents). The
format of every disk is read from its bytes (``vmlog.store.image_gate``), never from its name.
"""

from __future__ import annotations

import hashlib
import lzma
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from vmlog import safejson
from vmlog.appliances.ovf import parse_ovf
from vmlog.appliances.ovf_disks import parse_descriptor
from vmlog.errors import IntegrityError, InvalidInput
from vmlog.store.expansion import ExpansionBudget
from vmlog.store.image_gate import ARCHIVE_KINDS, HostileImage, detect_format, printable

MAX_DISK_BYTES = 256 << 30
MAX_METADATA_BYTES = 64 << 10
MAX_SMALL_MEMBER = 1 << 20  # box.ovf, manifests
MAX_MEMBERS = 4096
COPY_CHUNK = 1 << 20
HOLE = 64 << 10  # a block of zeros this long is skipped, not written
_ZEROS = bytes(HOLE)

PROVIDERS = ("libvirt", "virtualbox", "vmware_desktop")
DISK_SUFFIXES = (".img", ".qcow2", ".vmdk", ".vdi", ".raw")
SMALL_SUFFIXES = (".ovf", ".mf")
# What a box's metadata.json may call its provider for each provider vmlog unpacks.
PROVIDER_NAMES = {
    "libvirt": ("libvirt",),
    "virtualbox": ("virtualbox",),
    "vmware_desktop": ("vmware_desktop", "vmware_fusion", "vmware_workstation"),
}
# Kept for callers that list what each provider's box holds.
DISK_MEMBERS = {
    "libvirt": (("box.img",), "qcow2"),
    "virtualbox": ((".vmdk",), "vmdk"),
    "vmware_desktop": ((".vmdk",), "vmdk"),
}


@dataclass(frozen=True)
class BoxDisk:
    """One disk taken out of a box: the file we wrote, its name in the box, the format its bytes show."""

    path: Path
    member: str
    format: str  # qcow2, vmdk, vdi, raw, ... or ``vmdk-descriptor`` for a VMDK split into extents


@dataclass
class UnpackedBox:
    """What a box held that vmlog uses: its metadata, its disks (system disk first), every member read."""

    metadata: dict[str, Any]
    provider: str
    disks: list[BoxDisk]
    members: dict[str, Path] = field(default_factory=dict)  # name in the box -> file in the work dir
    layout: str = ""  # how the disks were found, for the record of where an image came from


def member_name(member: tarfile.TarInfo) -> str | None:
    """The member's normalised name (``./box.img`` is ``box.img``); None for the archive's own ``.``."""
    path = PurePosixPath(member.name)
    parts = [p for p in path.parts if p not in ("", ".")]
    if member.name.startswith("/") or ".." in parts:
        raise IntegrityError(f"box member {printable(member.name)!r} points outside the box; refused")
    if not (member.isfile() or member.isdir()):
        raise IntegrityError(f"box member {printable(member.name)!r} is a link or device; refused")
    if not parts:
        if member.isdir():
            return None  # ``tar czf x.box -C dir .`` starts with the directory itself
        raise IntegrityError(f"box member {printable(member.name)!r} has no name; refused")
    return "/".join(parts)


def copy_sparse(
    src: IO[bytes], dest: Path, limit: int, what: str, hashers: tuple[Any, ...] = (), *,
    budget: ExpansionBudget | None = None, declared: int | None = None, sparse: bool = False,
) -> int:  # fmt: skip
    """Copy ``src`` into the new file ``dest`` leaving zero blocks as holes; at most ``limit`` bytes.

    With ``budget`` (a member of a box or OVA whose tar header says ``declared`` bytes), the member is checked
    against its own image header and the free space before its first write, and its data against the archive's
    expansion ratio while it is written (:mod:`vmlog.store.expansion`).
    """
    written = 0
    with open(dest, "xb") as out:
        while chunk := src.read(COPY_CHUNK if written else HOLE):  # the first block alone: the header is checked
            if budget is not None and written == 0:
                limit = budget.start_member(what, limit if declared is None else declared, chunk, dest, limit, sparse)
            written += len(chunk)
            if written > limit:
                raise IntegrityError(f"{what} exceeds the {limit} byte limit")
            for hasher in hashers:
                hasher.update(chunk)
            view = memoryview(chunk)
            data = 0
            for start in range(0, len(view), HOLE):
                block = view[start : start + HOLE]
                if len(block) == HOLE and block == _ZEROS:
                    out.seek(HOLE, 1)
                else:
                    out.write(block)
                    data += len(block)
            if budget is not None:
                budget.count_data(data, what)
        out.truncate(written)
    return written


def _wanted(name: str, _read: object = None) -> int | None:
    """The byte limit for a member vmlog reads, or None for members it skips (Vagrantfile, include/...)."""
    lowered = name.lower()
    if name == "metadata.json":
        return MAX_METADATA_BYTES
    if lowered.endswith(SMALL_SUFFIXES):
        return MAX_SMALL_MEMBER
    if lowered.endswith(DISK_SUFFIXES):
        return MAX_DISK_BYTES
    return None


@dataclass(frozen=True)
class ArchiveMember:
    """A member read out of an archive: where we wrote it and the digests of its bytes (algo -> hex)."""

    path: Path
    digests: dict[str, str]


def read_archive(
    archive: Path,
    dest_dir: Path,
    *,
    wanted: Callable[[str, dict[str, ArchiveMember]], int | None],
    max_total: int,
    kinds: tuple[str, ...],
    what: str,
    hash_algos: tuple[str, ...] = (),
    virtual_size: Callable[[dict[str, ArchiveMember]], tuple[str, int] | None] | None = None,
) -> dict[str, ArchiveMember]:
    """Read the members ``wanted`` gives a byte limit for out of the tar ``archive``, in one pass.

    ``wanted(name, members_read_so_far)`` returns the member's byte limit, or None to skip it.

    Every member is checked (names, kinds, count) even when it is skipped; ``kinds`` are the formats
    the archive's bytes may show (``tar``, ``gzip``...); ``virtual_size(members_read_so_far)`` is what the
    archive's metadata declares as a disk's virtual size, for disks whose own header says none (raw).
    """
    kind = detect_format(archive)
    if kind not in kinds:
        raise IntegrityError(f"{archive.name} is not {what} (a tar archive) but {kind}")
    members: dict[str, ArchiveMember] = {}
    total = 0
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            budget = ExpansionBudget(archive.name, archive.stat().st_size, kind not in ("tar", "ova"), raw.tell)
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise IntegrityError(f"{archive.name} holds more than {MAX_MEMBERS} members; refused")
                name = member_name(member)
                limit = wanted(name, members) if name is not None and member.isfile() else None
                if name is None or limit is None:
                    continue
                if name in members:
                    raise IntegrityError(f"{archive.name} holds {printable(name)} twice; refused")
                limit = min(limit, max_total - total)
                budget.check_header(f"member {printable(name)}", member.size, member.sparse is not None)
                budget.declared_virtual = virtual_size(members) if virtual_size is not None else None
                src = tar.extractfile(member)
                assert src is not None
                target = dest_dir / f"member-{len(members):04d}{PurePosixPath(name).suffix.lower()[:8]}"
                hashers = tuple(hashlib.new(algo) for algo in hash_algos)
                total += copy_sparse(src, target, limit, f"member {printable(name)}", hashers, budget=budget,
                                     declared=member.size, sparse=member.sparse is not None)  # fmt: skip
                digests = {algo: h.hexdigest() for algo, h in zip(hash_algos, hashers, strict=True)}
                members[name] = ArchiveMember(target, digests)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # a real I/O error here (disk full...), not damaged compressed data
        raise IntegrityError(f"{archive.name} is not a readable {what}: {exc}") from exc
    return members


def read_members(box: Path, dest_dir: Path, *, max_disk_bytes: int = MAX_DISK_BYTES) -> dict[str, Path]:
    """Read the members vmlog may use out of ``box`` (a tar, maybe gzip/bzip2/xz) into ``dest_dir``."""
    members = read_archive(
        box, dest_dir, wanted=_wanted, max_total=max_disk_bytes, kinds=("tar", "ova", "gzip", "bzip2", "xz"),
        what="a Vagrant box", virtual_size=_metadata_virtual_size,
    )  # fmt: skip
    return {name: member.path for name, member in members.items()}


def _metadata_virtual_size(read: dict[str, ArchiveMember]) -> tuple[str, int] | None:
    """The disk size metadata.json declares (vagrant-libvirt's ``virtual_size``, in GiB), once it has been read."""
    if "metadata.json" not in read:
        return None
    try:
        size = safejson.loads(read["metadata.json"].path.read_bytes(), what="metadata.json").get("virtual_size")
    except (ValueError, AttributeError):
        return None  # refused, with the reason, once the box is read
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size < 1 << 20:
        return None
    return "metadata.json", int(size * (1 << 30))


def _metadata(box: Path, members: dict[str, Path], provider: str | None) -> dict[str, Any]:
    if "metadata.json" not in members:
        raise IntegrityError(f"{box.name} has no metadata.json; not a Vagrant box")
    try:
        metadata = safejson.loads(members["metadata.json"].read_bytes(), what="metadata.json")
    except ValueError as exc:
        raise IntegrityError(f"{box.name}: metadata.json is not JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise IntegrityError(f"{box.name}: metadata.json is not a JSON object")
    box_provider = metadata.get("provider")
    if provider is None:
        return metadata
    if box_provider and box_provider not in PROVIDER_NAMES[provider]:
        raise InvalidInput(f"{box.name} is a {printable(str(box_provider))} box, not {provider}")
    return metadata


def box_provider(metadata: dict[str, Any]) -> str:
    """The provider vmlog unpacks a box as, from what its metadata.json says."""
    said = str(metadata.get("provider", ""))
    for provider, names in PROVIDER_NAMES.items():
        if said in names:
            return provider
    raise InvalidInput(
        f"the box is for the {printable(said) or 'unnamed'} provider",
        fix=f"vmlog reads boxes for {', '.join(PROVIDERS)}",
    )


def _libvirt_disks(metadata: dict[str, Any], members: dict[str, Path]) -> tuple[list[str], str]:
    """vagrant-libvirt: v2 lists ``disks`` (each with a ``path``), v1 has ``box.img``."""
    disks = metadata.get("disks")
    if disks:
        if not isinstance(disks, list) or not all(isinstance(d, dict) and isinstance(d.get("path"), str)
                                                  for d in disks):  # fmt: skip
            raise IntegrityError("metadata.json: every entry of disks needs a path")
        names = [str(PurePosixPath(*[p for p in PurePosixPath(d["path"]).parts if p != "."])) for d in disks]
        return names, "vagrant-libvirt v2 (disks array)"
    return ["box.img"], "vagrant-libvirt v1 (box.img)"


def _virtualbox_disks(members: dict[str, Path]) -> tuple[list[str], str]:
    """VirtualBox boxes: the disks ``box.ovf`` references, in its order; else the VMDK files themselves."""
    if "box.ovf" in members:
        descriptor = parse_ovf(members["box.ovf"].read_bytes(), source="box.ovf")
        return [disk.href for disk in descriptor.disks], "VirtualBox box (box.ovf)"
    return sorted(n for n in members if n.lower().endswith((".vmdk", ".vdi"))), "VirtualBox box (VMDK)"


def _vmware_disks(members: dict[str, Path]) -> tuple[list[str], str]:
    """VMware boxes: every VMDK that is not an extent of another (Packer's split ``disk.vmdk`` with its
    ``disk-sNNN.vmdk``), by name, ``disk.vmdk`` (the VMware builder's system disk) first."""
    vmdks = [n for n in members if n.lower().endswith(".vmdk")]
    extents = {e for n in vmdks for e in _descriptor_extents(n, members[n])}
    disks = sorted((n for n in vmdks if n not in extents), key=lambda n: (PurePosixPath(n).name != "disk.vmdk", n))
    return disks, "VMware box (VMDK)"


def _descriptor_extents(name: str, path: Path) -> list[str]:
    if detect_format(path) != "vmdk-descriptor":
        return []
    parent = PurePosixPath(name).parent
    return [str(parent / extent.file_name) for extent in parse_descriptor(path.read_bytes()).extents]


def unpack_box(
    box: Path, provider: str | None, dest_dir: Path, *, max_disk_bytes: int = MAX_DISK_BYTES
) -> UnpackedBox:
    """Take the disks for ``provider`` (None: the one metadata.json names) out of ``box`` into ``dest_dir``.

    ``dest_dir`` must exist; the caller removes it.
    """
    if provider is not None and provider not in PROVIDERS:
        raise InvalidInput(f"unsupported Vagrant provider {provider!r}", fix=f"use one of {list(PROVIDERS)}")
    members = read_members(box, dest_dir, max_disk_bytes=max_disk_bytes)
    metadata = _metadata(box, members, provider)
    provider = provider or box_provider(metadata)
    if provider == "libvirt":
        names, layout = _libvirt_disks(metadata, members)
    elif provider == "virtualbox":
        names, layout = _virtualbox_disks(members)
    else:
        names, layout = _vmware_disks(members)
    missing = [n for n in names if n not in members]
    if not names or missing:
        raise IntegrityError(
            f"{box.name} holds no {provider} disk ({printable(', '.join(missing) or 'none found')} missing)"
        )
    declared = _declared_format(metadata) if provider == "libvirt" and not metadata.get("disks") else None
    disks = []
    for name in names:
        fmt = detect_format(members[name])
        if fmt in ARCHIVE_KINDS or fmt == "iso":
            raise HostileImage(f"{box.name}: disk {printable(name)} is a {fmt} archive, not a disk image",
                               reason="archive")  # fmt: skip
        if declared is not None and fmt != declared:
            raise HostileImage(f"{box.name}: {printable(name)} is declared {declared} but its header says {fmt}",
                               reason="format-mismatch")  # fmt: skip
        disks.append(BoxDisk(members[name], name, fmt))
    return UnpackedBox(metadata, provider, disks, members, layout)


def _declared_format(metadata: dict[str, Any]) -> str:
    """vagrant-libvirt v1 declares its one disk's format (``qcow2``, the only one it accepts); the bytes must agree."""
    declared = str(metadata.get("format") or "qcow2").lower()
    return declared if declared in ("qcow2", "raw") else "qcow2"


def extract_box(
    box: Path, provider: str, dest_dir: Path, *, max_disk_bytes: int = MAX_DISK_BYTES
) -> tuple[Path, str, dict]:
    """The system disk of ``box`` for ``provider``: (path, format its bytes show, metadata.json)."""
    unpacked = unpack_box(box, provider, dest_dir, max_disk_bytes=max_disk_bytes)
    disk = unpacked.disks[0]
    return disk.path, disk.format, unpacked.metadata
