"""Writes the tar of an archive member by member, compressing as it goes, with no copy of any member on disk.

A tar header holds the member's size, which a compressed stream only knows at its end: each header
is written as a placeholder, the data streamed behind it, and the header rewritten in place once the
size is known (the file is a temporary one of our own, so it can seek). Headers are plain 512-byte
GNU headers (names under 100 characters, sizes in base-256 past 8 GiB), so any tar reads them.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from vmlog.bundles.zstd_stream import CHUNK, DEFAULT_LEVEL, compression_threads

BLOCK = 512
_MTIME = 0


@dataclass(frozen=True)
class Written:
    """What one member became in the archive: its stored bytes and the bytes before compression."""

    stored_size: int
    stored_sha256: str
    raw_size: int
    raw_sha256: str


class _StoredSink:
    """Where compressed bytes go: the archive file, hashed and counted on the way."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.fh.write(data)
        return len(data)

    def flush(self) -> None:
        """zstandard flushes its destination at frame ends; the archive file is flushed when it is closed."""


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = _MTIME
    info.mode = 0o644
    info.uname = info.gname = "vmlog"
    block = info.tobuf(format=tarfile.GNU_FORMAT)
    if len(block) != BLOCK:  # a long name would add a header of its own, and the placeholder would not fit
        raise ValueError(f"member name {name!r} needs more than one tar header block")
    return block


class TarStream:
    """An archive being written to ``fh`` (seekable); :meth:`close` writes tar's end-of-archive blocks."""

    def __init__(self, fh: BinaryIO, *, level: int = DEFAULT_LEVEL, threads: int | None = None) -> None:
        self.fh = fh
        workers = compression_threads() if threads is None else threads
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=workers, window_log=27,
                                                                enable_ldm=True)
        self.compressor = zstandard.ZstdCompressor(compression_params=params)

    def add(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        compress: bool,
        progress: Callable[[int], None] | None = None,
    ) -> Written:
        """Member ``name`` made of ``chunks``, zstd-compressed if ``compress``; its sizes and digests."""
        start = self.fh.tell()
        self.fh.write(_header(name, 0))
        sink = _StoredSink(self.fh)
        raw = hashlib.sha256()
        raw_size = 0
        if compress:
            writer = self.compressor.stream_writer(sink, closefd=False, write_return_read=True)
            for chunk in chunks:
                raw.update(chunk)
                raw_size += len(chunk)
                writer.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            writer.close()  # ends the one frame the member is
        else:
            for chunk in chunks:
                raw.update(chunk)
                raw_size += len(chunk)
                sink.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        self.fh.write(b"\0" * (-sink.size % BLOCK))
        end = self.fh.tell()
        self.fh.seek(start)
        self.fh.write(_header(name, sink.size))
        self.fh.seek(end)
        return Written(sink.size, sink.sha.hexdigest(), raw_size, raw.hexdigest())

    def add_bytes(self, name: str, data: bytes) -> Written:
        return self.add(name, [data], compress=False)

    def close(self) -> None:
        self.fh.write(b"\0" * (2 * BLOCK))


def file_chunks(fh: BinaryIO, head: bytes | None = None) -> Iterable[bytes]:
    """The bytes of an open file in pieces of 1 MiB, the first ``len(head)`` bytes replaced by ``head``."""
    if head is not None:
        fh.seek(len(head))
        yield head
    while data := fh.read(CHUNK):
        yield data
