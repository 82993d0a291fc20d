"""Whole-stream zstd compression of bundle members, with digests and hard decompression limits.

A delta qcow2 is compressed as one stream with a long window (long-distance matching), which
here beat per-cluster compression by 2x. Decompression of untrusted members stops as soon as the
output passes the size the manifest declared, or the reader's ratio and absolute caps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from vmlog.bundles.errors import BundleRejected

WINDOW_LOG = 27  # 128 MiB window: what a reader must accept, and all it will accept
CHUNK = 1 << 20


@dataclass(frozen=True)
class StreamDigest:
    """Sizes and sha256 of a member before (raw) and after (stored) compression."""

    raw_size: int
    raw_sha256: str
    stored_size: int
    stored_sha256: str


class _HashingWriter:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


def compress_file(src: Path, dest: Path, *, level: int = 6, threads: int = 0) -> StreamDigest:
    """Compress ``src`` into ``dest`` as one zstd frame with long-distance matching."""
    params = zstandard.ZstdCompressionParameters.from_level(
        level, window_log=WINDOW_LOG, enable_ldm=True, threads=threads
    )
    cctx = zstandard.ZstdCompressor(compression_params=params)
    raw_sha = hashlib.sha256()
    raw_size = 0
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        sink = _HashingWriter(fout)
        with cctx.stream_writer(sink, closefd=False) as writer:
            while chunk := fin.read(CHUNK):
                raw_sha.update(chunk)
                raw_size += len(chunk)
                writer.write(chunk)
    return StreamDigest(raw_size, raw_sha.hexdigest(), sink.size, sink.sha.hexdigest())


def decompress_stream(
    src: BinaryIO,
    write: Callable[[bytes], object] | None,
    *,
    what: str,
    declared_size: int,
    limit: int,
) -> tuple[int, str]:
    """Decompress ``src`` chunk by chunk into ``write`` (or nowhere), returning (size, sha256).

    Raises :class:`BundleRejected` as soon as the output grows past ``declared_size`` or
    ``limit``, or the frame asks for a window larger than writers use.
    """
    dctx = zstandard.ZstdDecompressor(max_window_size=1 << WINDOW_LOG)
    sha = hashlib.sha256()
    size = 0
    try:
        reader = dctx.stream_reader(src, read_size=CHUNK, read_across_frames=False)
        while chunk := reader.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise BundleRejected("bomb", f"{what} decompresses to more than {limit} bytes (a decompression bomb)")
            if size > declared_size:
                raise BundleRejected(
                    "bomb", f"{what} decompresses to more than the {declared_size} bytes its manifest declares"
                )
            sha.update(chunk)
            if write is not None:
                write(chunk)
    except zstandard.ZstdError as exc:
        raise BundleRejected("corrupt", f"{what} is not a valid zstd stream ({exc})") from exc
    return size, sha.hexdigest()
