"""Reads an untrusted ``.vmlarchive`` end to end: every header, name, size and digest, without extracting anything.

The archive is walked member by member in the order the manifest announces; each member's bytes
stream through their stored and decompressed digests and stop as soon as they pass the declared
size. Layer and base headers are checked from the stream (:mod:`vmlog.archive.layer_header`). Where
the caller gives a sink, the decompressed bytes also go there: the same walk verifies (no sink) and
unpacks (after a verifying walk, into files the caller made), so what is written is what was checked.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vmlog.archive import format as af
from vmlog.archive.errors import ArchiveRejected
from vmlog.archive.layer_header import HEAD_BYTES, MAGIC, check_head, parse_head
from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.members import check_extension_headers, check_member_header
from vmlog.bundles.zstd_stream import CHUNK, decompress_stream

Sink = Callable[[af.Member], BinaryIO | None]  # where a member's decompressed bytes go (None: nowhere)
MAX_SMALL_TOTAL = 256 << 20


@dataclass(frozen=True)
class VerifiedArchive:
    """An archive that passed every check: its manifest, members, small members' bytes, whole-file sha256."""

    path: Path
    manifest: dict[str, Any]
    members: dict[str, af.Member]
    small: dict[str, bytes]
    size: int
    sha256: str
    manifest_sha256: str

    def raw_bytes(self, kinds: tuple[str, ...] = ("base", "layer", "release")) -> int:
        return sum(m.raw_size for m in self.members.values() if m.kind in kinds)


class _WholeFile:
    """The archive file, hashed from its first byte to its last as ``tarfile`` reads it (re-reads are not hashed)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.hashed = 0

    def tell(self) -> int:
        return self.fh.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        pos = self.fh.tell()
        if pos > self.hashed:  # a skip (tar padding): hash the bytes skipped first
            self.fh.seek(self.hashed)
            while self.hashed < pos:
                gap = self.fh.read(min(CHUNK, pos - self.hashed))
                if not gap:
                    break
                self.sha.update(gap)
                self.hashed += len(gap)
        data = self.fh.read(n)
        end = pos + len(data)
        if end > self.hashed:
            self.sha.update(data[self.hashed - pos :])
            self.hashed = end
        return data

    def finish(self) -> tuple[int, str]:
        self.fh.seek(self.hashed)
        while self.read(CHUNK):
            pass
        return self.hashed, self.sha.hexdigest()


class _Counted:
    """A member's stored bytes, hashed; the first ``HEAD_BYTES`` of its decompressed bytes kept for the header check."""

    def __init__(self, member: BinaryIO) -> None:
        self.member = member
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.member.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


def _as_archive(exc: BundleRejected) -> ArchiveRejected:
    return ArchiveRejected(exc.reason, exc.message.removeprefix("rejected state bundle: ").replace("bundle", "archive"))


def _next(tf: tarfile.TarFile, whole: _WholeFile) -> tarfile.TarInfo | None:
    try:
        check_extension_headers(whole, tf.offset, 64 << 10)  # type: ignore[arg-type]
        info = tf.next()
        if info is not None:
            check_member_header(info)
    except BundleRejected as exc:
        raise _as_archive(exc) from None
    except tarfile.TarError as exc:
        raise ArchiveRejected("truncated", f"the archive is truncated or corrupt ({exc})") from None
    return info


def _small(info: tarfile.TarInfo, tf: tarfile.TarFile, limit: int) -> tuple[bytes, _Counted]:
    if info.size > limit:
        raise ArchiveRejected("size", f"member {info.name!r} is {info.size} bytes (limit {limit})")
    src = _Counted(tf.extractfile(info))  # type: ignore[arg-type]
    try:
        data = src.read()
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveRejected("truncated", f"member {info.name!r} is truncated ({exc})") from None
    if len(data) != info.size:
        raise ArchiveRejected("truncated", f"member {info.name!r} is truncated")
    return data, src


def _check_image_head(member: af.Member, head: bytes, layers: dict[str, dict[str, Any]],
                      bases: dict[str, dict[str, Any]]) -> None:
    if member.kind == "layer":
        layer = layers[member.name[len("layers/") : -len(".zst")]]
        backing = layer.get("backing")
        name, fmt = None, None
        if backing and "layer" in backing:
            name, fmt = backing["layer"], "qcow2"
        elif backing:
            base = bases[backing["base"]]
            name, fmt = "../" + af.base_file(base["sha256"], base["format"]), base["format"]
        check_head(head, member.name, backing=name, backing_format=fmt, virtual_size=layer["virtual_size"])
    elif member.kind == "base":
        sha = member.name[len("base/") :].split(".")[0]
        is_qcow2 = head[:4] == MAGIC
        if is_qcow2 != (bases[sha]["format"] == "qcow2"):
            raise ArchiveRejected("base-format", f"{member.name}'s bytes are not in its declared format")
        if is_qcow2:
            facts = parse_head(head, member.name)
            if facts.backing_name is not None:
                raise ArchiveRejected("backing", f"{member.name} names a backing file")


def _check_claim(member: af.Member, layers: dict[str, dict[str, Any]]) -> None:
    """A layer may not claim more bytes than a qcow2 of its virtual size can hold (checked before decompressing)."""
    if member.kind == "layer":
        layer = layers[member.name[len("layers/") : -len(".zst")]]
        if member.raw_size > layer["virtual_size"] * 1.1 + (64 << 20):
            raise ArchiveRejected("bomb", f"{member.name} claims more bytes than a layer of its size can hold")


def _stream(
    info: tarfile.TarInfo, tf: tarfile.TarFile, member: af.Member, out: BinaryIO | None
) -> tuple[_Counted, bytes]:
    src = _Counted(tf.extractfile(info))  # type: ignore[arg-type]
    head = bytearray()

    def write(chunk: bytes) -> None:
        if len(head) < HEAD_BYTES:
            head.extend(chunk[: HEAD_BYTES - len(head)])
        if out is not None:
            out.write(chunk)

    try:
        size, sha = decompress_stream(src, write, what=f"member {member.name!r}", declared_size=member.raw_size,
                                      limit=member.raw_size)
    except BundleRejected as exc:
        raise _as_archive(exc) from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # this machine's disk, not the archive
        raise ArchiveRejected("truncated", f"member {member.name!r} is truncated ({exc})") from None
    try:
        trailing = src.member.read(1)
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveRejected("truncated", f"member {member.name!r} is truncated ({exc})") from None
    if trailing:
        raise ArchiveRejected("corrupt", f"member {member.name!r} has data after its zstd stream")
    if src.size != info.size:
        raise ArchiveRejected("truncated", f"member {member.name!r} is truncated")
    if size != member.raw_size or sha != member.raw_sha256:
        raise ArchiveRejected("digest", f"member {member.name!r} does not match its sha256 in the manifest")
    return src, bytes(head)


def read_archive(path: Path, *, sink: Sink | None = None, expect_manifest: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> VerifiedArchive:
    """Walk and check all of ``path``; decompressed bases and layers go to ``sink``. :class:`ArchiveRejected` if bad."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ArchiveRejected("unreadable", f"cannot read {path}: {exc.strerror}") from None
    with fh:
        whole = _WholeFile(fh)
        try:
            check_extension_headers(whole, 0, 64 << 10)  # type: ignore[arg-type]
            whole.seek(0)
            tf = tarfile.open(fileobj=whole, mode="r:")  # type: ignore[call-overload]
        except BundleRejected as exc:
            raise _as_archive(exc) from None
        except tarfile.TarError as exc:
            raise ArchiveRejected("not-an-archive", f"{path.name} is not a vmlarchive ({exc})") from None
        return _walk(path, tf, whole, sink, expect_manifest, progress)


def _walk(path: Path, tf: tarfile.TarFile, whole: _WholeFile, sink: Sink | None, expect_manifest: str | None,
          progress: Callable[[int, int], None] | None) -> VerifiedArchive:
    first = _next(tf, whole)
    if first is None or first.name != af.MANIFEST:
        raise ArchiveRejected("manifest", "the archive does not start with its manifest")
    manifest_bytes, counted = _small(first, tf, af.MAX_MANIFEST)
    stored = {af.MANIFEST: (counted.size, counted.sha.hexdigest())}
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    if expect_manifest is not None and manifest_sha != expect_manifest:
        raise ArchiveRejected("digest", "the archive changed since it was verified")
    manifest = af.parse_json(manifest_bytes, "the manifest")
    members = af.check_manifest(manifest)
    layers = {layer["name"]: layer for layer in manifest["layers"]}
    bases = {base["sha256"]: base for base in manifest["bases"]}
    small: dict[str, bytes] = {}
    total, done = sum(m.raw_size for m in members.values()), 0
    for member in members.values():
        info = _next(tf, whole)
        if info is None or info.name != member.name:
            got = "the end" if info is None else repr(info.name[:120])
            raise ArchiveRejected("members", f"expected member {member.name!r}, found {got}")
        if member.compression == "none":
            data, counted = _small(info, tf, af.MAX_SMALL_MEMBER)
            if len(data) != member.raw_size or hashlib.sha256(data).hexdigest() != member.raw_sha256:
                raise ArchiveRejected("digest", f"member {member.name!r} does not match its sha256 in the manifest")
            small[member.name] = data
            if sum(len(v) for v in small.values()) > MAX_SMALL_TOTAL:
                raise ArchiveRejected("size", "the archive's project files are too large together")
        else:
            _check_claim(member, layers)
            out = sink(member) if sink else None
            try:
                counted, head = _stream(info, tf, member, out)
            finally:
                if out is not None:
                    out.close()
            _check_image_head(member, head, layers, bases)
        stored[member.name] = (counted.size, counted.sha.hexdigest())
        done += member.raw_size
        if progress is not None:
            progress(done, total)
    _check_digests(tf, whole, stored)
    size, sha = whole.finish()
    return VerifiedArchive(path, manifest, members, small, size, sha, manifest_sha)


def _check_digests(tf: tarfile.TarFile, whole: _WholeFile, stored: dict[str, tuple[int, str]]) -> None:
    info = _next(tf, whole)
    if info is None or info.name != af.DIGESTS:
        raise ArchiveRejected("truncated", "the archive ends before its digests (truncated?)")
    data, _ = _small(info, tf, af.MAX_DIGESTS)
    doc = af.parse_json(data, "the digests")
    listed = doc.get("members")
    if not isinstance(listed, dict) or set(listed) != set(stored):
        raise ArchiveRejected("members", "the digests do not list exactly the archive's members")
    for name, (size, sha) in stored.items():
        entry = listed[name]
        if not isinstance(entry, dict) or entry.get("stored_size") != size or entry.get("stored_sha256") != sha:
            raise ArchiveRejected("digest", f"member {name!r} does not match its stored sha256")
    if _next(tf, whole) is not None:
        raise ArchiveRejected("members", "the archive has members after its digests")
