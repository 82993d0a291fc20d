"""Writes a planned archive: manifest first, then project files, descriptors, bases and layers, digests last.

The manifest carries every member's size and sha256 before compression (the base's is the store's
own digest, checked again as the bytes stream by; each layer is hashed in a first read), so a
reader checks each member as it arrives. The stored (compressed) digests are only known at the
end and go into the last member. The file is written under a temporary name beside the output and
renamed into place once complete and synced: an interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog import __version__, fsutil
from vmlog.archive import format as af
from vmlog.archive.layer_header import repointed_head
from vmlog.archive.plan import ArchivePlan, LayerSource
from vmlog.archive.tar_out import TarStream, Written, file_chunks
from vmlog.bundles.zstd_stream import CHUNK
from vmlog.errors import IntegrityError

ByteProgress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass(frozen=True)
class PackedArchive:
    """A finished archive: where, how big, its whole-file sha256, and what it holds."""

    path: Path
    size: int
    sha256: str
    states: int
    layers: int
    bases: int
    raw_bytes: int
    notes: list[str] = field(default_factory=list)


def _layer_head(layer: LayerSource) -> bytes | None:
    return repointed_head(layer.path, layer.archived_backing) if layer.archived_backing else None


def _hash_layer(layer: LayerSource) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with open(layer.path, "rb") as fh:
        for chunk in file_chunks(fh, _layer_head(layer)):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _manifest(plan: ArchivePlan, members: list[af.Member]) -> bytes:
    project = plan.project
    doc: dict[str, Any] = {
        "format": af.FORMAT, "format_version": af.FORMAT_VERSION, "features_required": list(af.FEATURES),
        "generator": f"vmlog {__version__}", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "project": {"name": project.name, "id": project.id, "backend": project.backend, "current": project.current,
                    "base": project.base},
        "bases": [{"sha256": b.image.sha256, "format": b.format, "size": b.image.size, "name": b.image.name,
                   "version": b.image.version, "urls": list(b.image.urls), "store_format": b.image.format}
                  for b in plan.bases.values()],
        "layers": [{"name": lay.name, "virtual_size": lay.virtual_size, "backing": lay.backing}
                   for lay in plan.layers.values()],
        "states": plan.states,
        "members": [{"name": m.name, **m.to_dict()} for m in members],
        "disk_files": plan.disk_files,
        "releases": plan.releases,
        "notes": plan.notes,
    }
    return (json.dumps(doc, indent=1) + "\n").encode()


def _announce(plan: ArchivePlan) -> list[af.Member]:
    members = [af.Member(name, af.check_member_name(name), "none", len(data), hashlib.sha256(data).hexdigest())
               for name, data in plan.small.items()]
    for base in plan.bases.values():
        members.append(af.Member(af.base_member(base.image.sha256, base.format), "base", "zstd", base.image.size,
                                 base.image.sha256))
    for layer in plan.layers.values():
        size, sha = _hash_layer(layer)
        members.append(af.Member(af.layer_member(layer.name), "layer", "zstd", size, sha))
    for key, path in plan.release_objects.items():
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        members.append(af.Member(af.release_member(key), "release", "zstd", len(data), digest))
    return members


def _stream_member(tar: TarStream, member: af.Member, plan: ArchivePlan, tick: Callable[[int], None]) -> Written:
    if member.kind == "base":
        base = next(b for b in plan.bases.values() if af.base_member(b.image.sha256, b.format) == member.name)
        with open(base.image.path, "rb") as fh:
            return tar.add(member.name, file_chunks(fh), compress=True, progress=tick)
    if member.kind == "layer":
        layer = plan.layers[member.name[len("layers/"):-len(".zst")]]
        with open(layer.path, "rb") as fh:
            return tar.add(member.name, file_chunks(fh, _layer_head(layer)), compress=True, progress=tick)
    if member.kind == "release":
        with open(plan.release_objects[af.release_key(member.name)], "rb") as fh:
            return tar.add(member.name, file_chunks(fh), compress=True, progress=tick)
    return tar.add_bytes(member.name, plan.small[member.name])


def write_archive(plan: ArchivePlan, out: Path, *, progress: ByteProgress | None = None,
                  threads: int | None = None) -> PackedArchive:
    """Write ``plan`` to ``out`` (replacing nothing until it is complete); the finished archive."""
    members = _announce(plan)
    total = sum(m.raw_size for m in members if m.kind in ("base", "layer", "release"))
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    try:
        with open(tmp, "w+b") as fh:
            tar = TarStream(fh, threads=threads)
            manifest = _manifest(plan, members)
            stored = {af.MANIFEST: tar.add_bytes(af.MANIFEST, manifest)}
            for member in members:
                written = _stream_member(tar, member, plan, tick)
                if written.raw_sha256 != member.raw_sha256 or written.raw_size != member.raw_size:
                    raise IntegrityError(f"{member.name} changed while it was archived (or the store copy is damaged)",
                                         fix="`vml appliance verify`, then archive again")
                stored[member.name] = written
            digests = {"members": {name: {"stored_size": w.stored_size, "stored_sha256": w.stored_sha256}
                                   for name, w in stored.items()}}
            tar.add_bytes(af.DIGESTS, (json.dumps(digests, indent=1) + "\n").encode())
            tar.close()
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
            whole = _whole_digest(fh)
        fsutil.durable_rename(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return PackedArchive(out, size, whole, len(plan.states), len(plan.layers), len(plan.bases), total,
                         list(plan.notes))


def _whole_digest(fh: Any) -> str:
    """The sha256 of the whole file, read back once it is complete (headers were rewritten in place)."""
    fh.seek(0)
    sha = hashlib.sha256()
    while data := fh.read(CHUNK * 4):
        sha.update(data)
    return sha.hexdigest()
