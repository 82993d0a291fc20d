"""The members of an untrusted bundle: each tar header checked, each member streamed through its digests.

The archive is never extracted. A member is accepted only if it is a regular file with a name that
stays inside the bundle, appears once, and its stored and decompressed bytes match the manifest
within the limits of :class:`ReadLimits`. Extension headers (PAX, GNU long names) are sized from
the raw header block before ``tarfile`` reads one, since it reads each whole into memory.
"""

from __future__ import annotations

import errno
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.hash_thread import ThreadedSha256
from vmlog.bundles.zstd_stream import CHUNK, decompress_stream
from vmlog.errors import InvalidInput


@dataclass(frozen=True)
class ReadLimits:
    """How much an untrusted bundle may make this reader read, decompress and write."""

    max_members: int = 32
    max_ratio: int = 1000  # decompressed/stored, enforced above ratio_floor
    ratio_floor: int = 256 << 20
    max_member_size: int = 64 << 30
    disk_overhead: float = 0.1  # qcow2 metadata allowance over the virtual size
    disk_overhead_floor: int = 64 << 20
    max_extension_header: int = 64 << 10  # a PAX or GNU long-name header: names and times, never more


WRITE_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_EXTENSION_TYPES = (b"x", b"g", b"L", b"K")
_MAX_CHAINED_EXTENSIONS = 4


def _header_size(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def check_extension_headers(fh: BinaryIO, offset: int, limit: int) -> None:
    """Refuse an oversized PAX/GNU extension header at ``offset`` before ``tarfile`` loads it into memory."""
    for _ in range(_MAX_CHAINED_EXTENSIONS + 1):
        fh.seek(offset)
        block = fh.read(512)
        if len(block) < 512 or block[156:157] not in _EXTENSION_TYPES:
            return
        try:
            size = _header_size(block[124:136])
        except ValueError:
            raise BundleRejected("tar-header", "a tar header has an unreadable size field") from None
        if size > limit:
            raise BundleRejected("tar-header", f"a tar extension header is {size} bytes (limit {limit})")
        offset += 512 + (size + 511) // 512 * 512
    raise BundleRejected("tar-header", "the archive chains too many tar extension headers")


class _HashingReader:
    """Reads a tar member, hashing (on a thread of its own) and counting what passes through."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = ThreadedSha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def drain(self) -> int:
        extra = 0
        while data := self.read(CHUNK):
            extra += len(data)
        return extra


def check_member_header(info: tarfile.TarInfo) -> None:
    name = info.name
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name:
        raise BundleRejected("traversal", f"member {name!r} has a path that leaves the bundle")
    if info.issym():
        raise BundleRejected("link", f"member {name!r} is a symbolic link (to {info.linkname!r})")
    if info.islnk():
        raise BundleRejected("link", f"member {name!r} is a hard link (to {info.linkname!r})")
    if not info.isreg():
        raise BundleRejected("special", f"member {name!r} is not a regular file")


@contextmanager
def walk_members(path: Path, limits: ReadLimits) -> Iterator[Iterator[tuple[tarfile.TarInfo, BinaryIO]]]:
    """The archive's members in order, each header checked; a duplicate or one too many is rejected."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        try:
            check_extension_headers(fh, 0, limits.max_extension_header)
            fh.seek(0)
            tf = tarfile.open(fileobj=fh, mode="r:")
        except tarfile.TarError as exc:
            raise BundleRejected("not-a-bundle", f"{path.name} is not a vmlstate archive ({exc})") from exc

        def walk() -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
            seen: set[str] = set()
            count = 0
            while True:
                check_extension_headers(fh, tf.offset, limits.max_extension_header)
                try:
                    info = tf.next()
                except tarfile.TarError as exc:
                    raise BundleRejected("truncated", f"the archive is truncated or corrupt ({exc})") from exc
                if info is None:
                    return
                count += 1
                if count > limits.max_members:
                    raise BundleRejected("members", f"the archive has more than {limits.max_members} members")
                check_member_header(info)
                if info.name in seen:
                    raise BundleRejected("duplicate", f"member {info.name!r} appears twice")
                seen.add(info.name)
                member = tf.extractfile(info)
                assert member is not None
                yield info, member

        with tf:
            yield walk()


def read_small(info: tarfile.TarInfo, member: BinaryIO, limit: int, reason: str) -> bytes:
    """A small member (the manifest, the signature) read whole; refused for ``reason`` above ``limit`` bytes."""
    if info.size > limit:
        raise BundleRejected(reason, f"member {info.name!r} is {info.size} bytes (limit {limit})")
    try:
        return member.read()
    except (tarfile.TarError, OSError) as exc:
        raise BundleRejected("truncated", f"member {info.name!r} is truncated ({exc})") from exc


def _limit_for(name: str, doc: dict[str, Any], entry: dict[str, Any], lim: ReadLimits) -> int:
    """How many bytes member ``name`` may decompress to: by ratio, by size, and by its disk's size."""
    limit = min(lim.max_member_size, max(lim.ratio_floor, lim.max_ratio * entry["stored_size"]))
    for disk in doc["disks"]:
        if disk["member"] == name:
            vsize = disk["virtual_size"]
            limit = min(limit, int(vsize * (1 + lim.disk_overhead)) + lim.disk_overhead_floor)
    return limit


def check_member_size(
    info: tarfile.TarInfo, entry: dict[str, Any], doc: dict[str, Any], limits: ReadLimits, file_size: int
) -> None:
    """What can be checked of a member without reading it: its stored size, that it lies inside the file,
    and that its declared decompressed size is within the limits."""
    name = info.name
    if info.size != entry["stored_size"]:
        raise BundleRejected(
            "size", f"member {name!r} is {info.size} bytes but the manifest says {entry['stored_size']}"
        )
    if info.offset_data + info.size > file_size:
        raise BundleRejected("truncated", f"member {name!r} is truncated: the archive ends inside it")
    if entry["compression"] == "zstd":
        limit = _limit_for(name, doc, entry, limits)
        if entry["raw_size"] > limit:
            raise BundleRejected(
                "bomb", f"member {name!r} claims {entry['raw_size']} bytes once decompressed (limit {limit})"
            )


def stream_member(
    info: tarfile.TarInfo,
    member: BinaryIO,
    entry: dict[str, Any],
    doc: dict[str, Any],
    write: Callable[[bytes], object] | None,
    limits: ReadLimits,
) -> None:
    """Stream one member through its digests (and into ``write``); reject on any mismatch."""
    name = info.name
    if info.size != entry["stored_size"]:
        raise BundleRejected(
            "size", f"member {name!r} is {info.size} bytes but the manifest says {entry['stored_size']}"
        )
    src = _HashingReader(member)
    try:
        if entry["compression"] == "zstd":
            limit = _limit_for(name, doc, entry, limits)
            if entry["raw_size"] > limit:
                raise BundleRejected(
                    "bomb", f"member {name!r} claims {entry['raw_size']} bytes once decompressed (limit {limit})"
                )
            try:
                raw_size, raw_sha = decompress_stream(
                    src, write, what=f"member {name!r}", declared_size=entry["raw_size"], limit=limit
                )
            except BundleRejected as exc:
                # a damaged stream (or what ``write`` made of it: a bad block list, a wrong reference) is
                # first of all a digest mismatch: say so if it is one
                src.drain()
                if src.sha.hexdigest() != entry["stored_sha256"]:
                    raise BundleRejected(
                        "digest", f"member {name!r} does not match its sha256 in the manifest"
                    ) from exc
                raise
            if src.drain():
                raise BundleRejected("corrupt", f"member {name!r} has data after its zstd stream")
        else:
            while data := src.read(CHUNK):
                if write is not None:
                    write(data)
            raw_size, raw_sha = src.size, src.sha.hexdigest()
    except (tarfile.TarError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in WRITE_FAILURES:
            raise  # this machine's disk, not the bundle: the caller says so
        raise BundleRejected("truncated", f"member {name!r} is truncated ({exc})") from exc
    finally:
        src.sha.close()  # the hash thread ends with the member, whatever happened
    if src.size != entry["stored_size"] or src.sha.hexdigest() != entry["stored_sha256"]:
        raise BundleRejected("digest", f"member {name!r} does not match its sha256 in the manifest")
    if entry["compression"] == "zstd" and (raw_size != entry["raw_size"] or raw_sha != entry["raw_sha256"]):
        raise BundleRejected("digest", f"member {name!r} decompresses to data that does not match its sha256")
