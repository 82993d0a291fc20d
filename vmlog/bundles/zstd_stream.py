"""Whole-stream zstd compression of bundle members, with digests and hard decompression limits.

A disk's block list is compressed as one stream at zstd's level 3 on every core, as ``zstd -3 -T0``
would: copies are already references, so long-distance matching would cost time for nothing. A
memory image keeps the 128 MiB window with long-distance matching. Decompression of untrusted
members stops as soon as the output passes the size the manifest declared, or the reader's ratio
and absolute caps.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.hash_thread import ThreadedSha256

WINDOW_LOG = 27  # 128 MiB window: what a reader must accept, and all it will accept
CHUNK = 1 << 20
DEFAULT_LEVEL = 3
_QUEUE_DEPTH = 8  # pieces of about 1 MiB in flight between the producer and the compressor


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


def compression_threads() -> int:
    """zstd worker threads: every core this process may use (what ``zstd -T0`` does)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _compressor(level: int, threads: int | None, long_distance: bool) -> zstandard.ZstdCompressor:
    """Level ``level`` on every core; with ``long_distance`` a 128 MiB window and long-distance matching."""
    workers = compression_threads() if threads is None else threads
    if long_distance:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=WINDOW_LOG, enable_ldm=True, threads=workers
        )
    else:
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=workers)
    return zstandard.ZstdCompressor(compression_params=params)


class CompressingSink:
    """Takes raw bytes from a producer and compresses them into ``dest`` on a thread of its own.

    The producer (reading and comparing disk blocks) never waits for compression unless the
    bounded queue is full; hashing of the raw stream happens on the compressing thread, so one
    pass over the data yields the compressed file and both digests. Use as a context manager;
    :attr:`digest` is set when it closes without error.
    """

    def __init__(
        self,
        dest: Path | BinaryIO,
        *,
        level: int = DEFAULT_LEVEL,
        threads: int | None = None,
        long_distance: bool = False,
    ) -> None:
        # an open file (the bundle itself, at a member's place) stays open: its owner closes it
        self._owns_file = isinstance(dest, (str, os.PathLike))
        self._fout: BinaryIO = open(dest, "wb") if isinstance(dest, (str, os.PathLike)) else dest
        self._sink = _HashingWriter(self._fout)
        self._writer = _compressor(level, threads, long_distance).stream_writer(self._sink, closefd=False)
        self._queue: queue.Queue[bytes | bytearray | memoryview | None] = queue.Queue(_QUEUE_DEPTH)
        self._raw_sha = hashlib.sha256()
        self._raw_size = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bundle-compress", daemon=True)
        self._thread.start()
        self.digest: StreamDigest | None = None

    def _run(self) -> None:
        try:
            while (piece := self._queue.get()) is not None:
                if self._error is None:
                    self._raw_sha.update(piece)
                    self._raw_size += len(piece)
                    self._writer.write(piece)
        except BaseException as exc:  # handed to the producer
            self._error = exc
            while self._queue.get() is not None:
                pass

    def write(self, piece: bytes | bytearray | memoryview) -> None:
        """Queue ``piece`` for compression; the caller must not change it afterwards (it is not copied)."""
        if self._error is not None:
            raise self._error
        self._queue.put(piece)

    def __enter__(self) -> CompressingSink:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            if exc_type is None and self._error is None:
                self._writer.close()  # no fsync here: the owner of the file (the bundle) syncs it once
                self.digest = StreamDigest(
                    self._raw_size, self._raw_sha.hexdigest(), self._sink.size, self._sink.sha.hexdigest()
                )
        finally:
            if self._owns_file:
                self._fout.close()
        if exc_type is None and self._error is not None:
            raise self._error


def compress_file(
    src: Path, dest: Path | BinaryIO, *, level: int = DEFAULT_LEVEL, threads: int | None = None
) -> StreamDigest:
    """Compress ``src`` into ``dest`` (a path, or an open file at the member's place) as one zstd frame
    with long-distance matching, on every core."""
    with CompressingSink(dest, level=level, threads=threads, long_distance=True) as sink, open(src, "rb") as fin:
        while chunk := fin.read(CHUNK):
            sink.write(chunk)
    assert sink.digest is not None
    return sink.digest


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
    sha = ThreadedSha256()  # hashed beside the decompression and ``write``
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
    finally:
        sha.close()
    return size, sha.hexdigest()
