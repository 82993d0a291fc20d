"""Safe unpacking of Vagrant ``.box`` files: a tar (maybe gzipped) of metadata.json and the disk.

A box is untrusted input: only regular files we ask for by name are read, into files we create;
members with absolute paths, ``..``, links or devices are refused, and sizes are capped so a
decompression bomb cannot fill the disk.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from vmlog import safejson
from vmlog.errors import IntegrityError, InvalidInput

MAX_DISK_BYTES = 256 << 30
MAX_METADATA_BYTES = 64 << 10
COPY_CHUNK = 1 << 20

# provider -> how its disk is named in the box and which format it is
DISK_MEMBERS = {
    "libvirt": (("box.img",), "qcow2"),
    "virtualbox": ((".vmdk",), "vmdk"),
    "vmware_desktop": ((".vmdk",), "vmdk"),
}


def _safe_name(member: tarfile.TarInfo) -> str:
    path = PurePosixPath(member.name)
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or ".." in parts or not parts:
        raise IntegrityError(f"box member {member.name!r} points outside the box; refused")
    if not (member.isfile() or member.isdir()):
        raise IntegrityError(f"box member {member.name!r} is a link or device; refused")
    return "/".join(parts)


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, limit: int) -> None:
    if member.size > limit:
        raise IntegrityError(f"box member {member.name} is {member.size} bytes, over the {limit} byte limit")
    src = tar.extractfile(member)
    assert src is not None
    written = 0
    with src, open(dest, "xb") as out:
        while chunk := src.read(COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                raise IntegrityError(f"box member {member.name} exceeds the {limit} byte limit")
            out.write(chunk)


def extract_box(
    box: Path, provider: str, dest_dir: Path, *, max_disk_bytes: int = MAX_DISK_BYTES
) -> tuple[Path, str, dict]:
    """Take the disk image for ``provider`` out of ``box``; return (path, format, metadata.json).

    ``dest_dir`` must exist and be empty; the caller removes it.
    """
    if provider not in DISK_MEMBERS:
        raise InvalidInput(f"unsupported Vagrant provider {provider!r}", fix=f"use one of {sorted(DISK_MEMBERS)}")
    wanted, fmt = DISK_MEMBERS[provider]
    metadata: dict | None = None
    disk: Path | None = None
    try:
        tar = tarfile.open(box, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"{box.name} is not a Vagrant box (tar): {exc}") from exc
    with tar:
        for member in tar:
            name = _safe_name(member)
            if member.isdir():
                continue
            base = PurePosixPath(name).name
            if name == "metadata.json":
                if metadata is not None:
                    raise IntegrityError(f"{box.name} holds metadata.json twice; refused")
                target = dest_dir / "metadata.json"
                _copy(tar, member, target, MAX_METADATA_BYTES)
                try:
                    metadata = safejson.loads(target.read_bytes(), what="metadata.json")
                except ValueError as exc:
                    raise IntegrityError(f"{box.name}: metadata.json is not JSON: {exc}") from exc
                if not isinstance(metadata, dict):
                    raise IntegrityError(f"{box.name}: metadata.json is not a JSON object")
            elif disk is None and any(base == w or (w.startswith(".") and base.endswith(w)) for w in wanted):
                disk = dest_dir / f"disk.{fmt}"
                _copy(tar, member, disk, max_disk_bytes)
    if metadata is None:
        raise IntegrityError(f"{box.name} has no metadata.json; not a Vagrant box")
    box_provider = metadata.get("provider")
    if box_provider and box_provider != provider:
        raise InvalidInput(f"{box.name} is a {box_provider} box, not {provider}")
    if disk is None:
        raise IntegrityError(f"{box.name} holds no {provider} disk ({', '.join(wanted)})")
    return disk, fmt, metadata
