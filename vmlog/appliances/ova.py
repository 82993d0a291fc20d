"""OVA packages as VirtualBox and VMware export them: reading one into checked disks, and writing one.

An OVA is a plain tar: the ``.ovf`` descriptor first, then (optionally) the ``.mf`` manifest and a
certificate, then the files the descriptor references. Reading checks every file the manifest lists
(SHA-1 from VirtualBox and older ovftool, SHA-256 or SHA-512 from newer ones) and that the
descriptor and every disk are listed; the disks' formats are read from their bytes. Writing puts
the files in the order DSP0243 asks for, with a SHA-256 manifest.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vmlog.appliances.box import MAX_DISK_BYTES, MAX_SMALL_MEMBER, ArchiveMember, BoxDisk, read_archive
from vmlog.appliances.ovf import MAX_DESCRIPTOR_BYTES, OvfDescriptor, manifest_text, parse_manifest, parse_ovf
from vmlog.errors import IntegrityError
from vmlog.store.image_gate import ARCHIVE_KINDS, HostileImage, detect_format, printable

READ_HASHES = ("sha1", "sha256")  # computed while reading; sha512 manifests are checked by a second read
VMDK_FORMAT_HINT = "vmdk"


@dataclass
class UnpackedOva:
    """What an OVA held: its descriptor, its disks (system disk first), what the manifest check found."""

    descriptor: OvfDescriptor
    descriptor_name: str
    disks: list[BoxDisk]
    members: dict[str, Path]
    manifest: str  # "SHA256 manifest: 2 files match" or "no manifest"


def _member_limit(name: str, read: dict[str, ArchiveMember]) -> int | None:
    """The descriptor, manifest and certificate are small; once the descriptor is read only its files are."""
    lowered = name.lower()
    if "/" not in name and lowered.endswith((".ovf", ".mf", ".cert")):
        return MAX_DESCRIPTOR_BYTES if lowered.endswith(".ovf") else MAX_SMALL_MEMBER
    descriptors = [n for n in read if n.lower().endswith(".ovf")]
    if descriptors:
        descriptor = parse_ovf(read[descriptors[0]].path.read_bytes(), source=descriptors[0])
        return MAX_DISK_BYTES if name in {d.href for d in descriptor.disks} else None
    return MAX_DISK_BYTES  # a package whose descriptor is not first: keep everything, decide later


def _digest(path: Path, algo: str) -> str:
    hasher = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_manifest(members: dict[str, ArchiveMember], manifest_name: str, needed: list[str]) -> str:
    """Every file the manifest lists must be in the package with that digest, and ``needed`` must be listed."""
    entries = parse_manifest(members[manifest_name].path.read_bytes(), source=manifest_name)
    unlisted = [n for n in needed if n not in entries]
    if unlisted:
        raise IntegrityError(f"{manifest_name} does not list {printable(', '.join(unlisted))}; refused")
    for name, (algo, expected) in entries.items():
        member = members.get(name)
        if member is None:
            if name in needed or not name.lower().endswith((".iso", ".nvram")):
                raise IntegrityError(f"{manifest_name} lists {printable(name)}, which the package lacks")
            continue  # a file vmlog did not read (an ISO): nothing to check
        actual = member.digests.get(algo) or _digest(member.path, algo)
        if actual != expected:
            raise IntegrityError(
                f"{printable(name)}: {algo} is {actual}, the manifest says {expected}",
                fix="the package is damaged or was changed after it was made; download or export it again",
            )
    algos = sorted({algo.upper() for algo, _ in entries.values()})
    return f"{'/'.join(algos)} manifest: {len(entries)} files match"


def unpack_ova(ova: Path, dest_dir: Path, *, max_disk_bytes: int = MAX_DISK_BYTES) -> UnpackedOva:
    """Read ``ova`` into ``dest_dir`` (which must exist; the caller removes it) and check it."""
    members = read_archive(
        ova, dest_dir, wanted=_member_limit, max_total=max_disk_bytes, kinds=("ova", "tar"), what="an OVA package",
        hash_algos=READ_HASHES,
    )  # fmt: skip
    top = [n for n in members if "/" not in n]
    descriptors = [n for n in top if n.lower().endswith(".ovf")]
    if len(descriptors) != 1:
        raise IntegrityError(f"{ova.name} holds {len(descriptors)} OVF descriptors; an OVA has exactly one")
    name = descriptors[0]
    descriptor = parse_ovf(members[name].path.read_bytes(), source=name)
    if not descriptor.disks:
        raise IntegrityError(f"{ova.name}: the descriptor names no disk to import")
    missing = [d.href for d in descriptor.disks if d.href not in members]
    if missing:
        raise IntegrityError(f"{ova.name} lacks the disk file {printable(', '.join(missing))}")
    manifests = [n for n in top if n.lower().endswith(".mf")]
    if len(manifests) > 1:
        raise IntegrityError(f"{ova.name} holds {len(manifests)} manifests; refused")
    needed = [name, *(d.href for d in descriptor.disks)]
    checked = check_manifest(members, manifests[0], needed) if manifests else "no manifest"
    disks = []
    for disk in descriptor.disks:
        path = members[disk.href].path
        fmt = detect_format(path)
        if fmt in ARCHIVE_KINDS or fmt == "iso":
            raise HostileImage(f"{ova.name}: disk {printable(disk.href)} is a {fmt} archive, not a disk image",
                               reason="archive")  # fmt: skip
        if VMDK_FORMAT_HINT in disk.format.lower() and fmt not in ("vmdk", "vmdk-descriptor"):
            raise IntegrityError(f"{ova.name}: disk {printable(disk.href)} is declared VMDK but its bytes are {fmt}")
        disks.append(BoxDisk(path, disk.href, fmt))
    return UnpackedOva(descriptor, name, disks, {n: m.path for n, m in members.items()}, checked)


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o644
    info.mtime = int(path.stat().st_mtime)
    info.uname = info.gname = "vmlog"
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


def write_ova(dest: Path, descriptor: bytes, descriptor_name: str, files: list[tuple[str, Path]]) -> Path:
    """Write the OVA ``dest``: descriptor, SHA-256 manifest, then ``files`` (name in the package, path).

    Written beside ``dest`` and renamed into place, so a failed export leaves no half package.
    """
    stem = PurePosixPath(descriptor_name).stem
    work = dest.with_name(f".{dest.name}.parts")
    work.mkdir(exist_ok=False)
    try:
        ovf_path = work / descriptor_name
        ovf_path.write_bytes(descriptor)
        digests = {descriptor_name: _digest(ovf_path, "sha256")}
        digests.update({name: _digest(path, "sha256") for name, path in files})
        mf_path = work / f"{stem}.mf"
        mf_path.write_text(manifest_text(digests))
        partial = dest.with_name(f".{dest.name}.tmp")
        with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT if _small(files) else tarfile.PAX_FORMAT) as tar:
            _add(tar, ovf_path, descriptor_name)
            _add(tar, mf_path, mf_path.name)
            for name, path in files:
                _add(tar, path, name)
        partial.rename(dest)
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
        dest.with_name(f".{dest.name}.tmp").unlink(missing_ok=True)
    return dest


def _small(files: list[tuple[str, Path]]) -> bool:
    """Plain ustar (what every OVF reader knows) holds members up to 8 GiB with names up to 100 bytes."""
    return all(path.stat().st_size < (8 << 30) and len(name) < 100 for name, path in files)
