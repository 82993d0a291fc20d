"""The block list of a disk delta (bundle format 2): what differs from the reference, 4 KiB block by block.

A neutral stream instead of a qcow2 file, because a guest's 4 KiB write would otherwise cost a
whole qcow2 cluster of the base's own bytes, and because a block that already exists elsewhere
(in the base, or earlier in the same delta) can then travel as a reference. The importer writes
the blocks into an overlay of its own making, so no image file from the sender is ever opened.

Layout (big-endian): the header ``VMLBLKS2``, u32 block size, u64 virtual size; then records of
u8 kind, u64 first target block, u32 block count, followed by

- ``DATA``: ``count * block size`` bytes to write;
- ``ZERO``: nothing (the blocks read as zeroes);
- ``BASE``: u64 first source block in the base image, and the sha256 of the source bytes;
- ``COPY``: u64 first source block of this same disk, written by an earlier record, and the sha256;
- ``END``: the number of records before it; nothing may follow.

Records come in increasing target order and never overlap; a record covers at most
:data:`MAX_RUN` blocks, so a reader holds at most one record in memory.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from vmlog.bundles.errors import BundleRejected

MAGIC = b"VMLBLKS2"
BLOCK_SIZE = 4096
MAX_RUN = 1024
END, DATA, ZERO, BASE, COPY = 0, 1, 2, 3, 4
_HEADER = struct.Struct(">8sIQ")
_RECORD = struct.Struct(">BQI")
_SOURCE = struct.Struct(">Q32s")
FLUSH_AT = 1 << 20
DIRECT_AT = 256 << 10


@dataclass(frozen=True)
class Record:
    """One decoded record; ``data`` for DATA, ``source`` and ``sha256`` for BASE and COPY."""

    kind: int
    first: int
    count: int
    source: int = 0
    sha256: bytes = b""
    data: bytes = b""


class BlockEncoder:
    """Writes a block list into ``sink`` in pieces of about 1 MiB (or a long data run as it is).

    A piece handed to ``sink`` is never changed afterwards, so the sink may keep it (a queue to a
    compressing thread) without a copy.
    """

    def __init__(self, sink: Callable[[bytes | bytearray | memoryview], object], virtual_size: int) -> None:
        self._sink = sink
        self._buf = bytearray(_HEADER.pack(MAGIC, BLOCK_SIZE, virtual_size))
        self.records = 0

    def _emit(self, *parts: bytes | bytearray | memoryview) -> None:
        for part in parts:
            if len(part) >= DIRECT_AT:  # a long data run goes to the sink as it is, not copied into the buffer
                if self._buf:
                    self._sink(self._buf)
                    self._buf = bytearray()
                self._sink(part)
            else:
                self._buf += part
        self.records += 1
        if len(self._buf) >= FLUSH_AT:
            self._sink(self._buf)  # handed over, never written again: a new buffer takes its place
            self._buf = bytearray()

    def data(self, first: int, payload: bytes | bytearray | memoryview) -> None:
        self._emit(_RECORD.pack(DATA, first, len(payload) // BLOCK_SIZE), payload)

    def zero(self, first: int, count: int) -> None:
        self._emit(_RECORD.pack(ZERO, first, count))

    def reference(self, kind: int, first: int, count: int, source: int, sha256: bytes) -> None:
        self._emit(_RECORD.pack(kind, first, count), _SOURCE.pack(source, sha256))

    def close(self) -> None:
        self._buf += _RECORD.pack(END, 0, self.records)
        self._sink(self._buf)
        self._buf = bytearray()


def _bad(message: str) -> BundleRejected:
    return BundleRejected("blocks", f"the block list {message}")


class BlockDecoder:
    """Parses an untrusted block list fed in arbitrary pieces; hands each checked record to ``on_record``.

    Structure is checked here (header, kinds, counts, order, bounds of the target); what a
    reference points at is checked by whoever applies the record.
    """

    def __init__(self, on_record: Callable[[Record], None], *, virtual_size: int) -> None:
        self._on_record = on_record
        self._virtual_size = virtual_size
        self._blocks = -(-virtual_size // BLOCK_SIZE)
        self._buf = bytearray()
        self._header_done = False
        self._ended = False
        self._next_free = 0
        self.records = 0

    def feed(self, chunk: bytes) -> None:
        if self._ended and chunk:
            raise _bad("has data after its end record")
        self._buf += chunk
        if not self._header_done:
            if len(self._buf) < _HEADER.size:
                return
            magic, block_size, vsize = _HEADER.unpack_from(self._buf)
            if magic != MAGIC or block_size != BLOCK_SIZE:
                raise _bad("does not start with a version 2 block list header")
            if vsize != self._virtual_size:
                raise _bad(f"is for a {vsize}-byte disk, the manifest says {self._virtual_size}")
            del self._buf[: _HEADER.size]
            self._header_done = True
        while self._take():
            pass

    def _take(self) -> bool:
        """Decode one record from the buffer if it is complete; False if more bytes are needed."""
        if self._ended or len(self._buf) < _RECORD.size:
            if self._ended and self._buf:
                raise _bad("has data after its end record")
            return False
        kind, first, count = _RECORD.unpack_from(self._buf)
        if kind == END:
            if count != self.records or first != 0 or len(self._buf) != _RECORD.size:
                raise _bad("ends with a wrong record count or trailing data")
            self._buf.clear()
            self._ended = True
            return False
        if kind not in (DATA, ZERO, BASE, COPY):
            raise _bad(f"has a record of unknown kind {kind}")
        if not 1 <= count <= MAX_RUN or first < self._next_free or first + count > self._blocks:
            raise _bad(f"has a record outside the disk or out of order (block {first}, count {count})")
        need = _RECORD.size + {DATA: count * BLOCK_SIZE, ZERO: 0}.get(kind, _SOURCE.size)
        if len(self._buf) < need:
            return False
        with memoryview(self._buf) as view:  # one copy of the body, not two
            body = bytes(view[_RECORD.size : need])
        del self._buf[:need]
        if kind == DATA:
            record = Record(kind, first, count, data=body)
        elif kind == ZERO:
            record = Record(kind, first, count)
        else:
            source, sha = _SOURCE.unpack(body)
            record = Record(kind, first, count, source=source, sha256=sha)
        self._next_free = first + count
        self.records += 1
        self._on_record(record)
        return True

    def finish(self) -> None:
        if not self._ended:
            raise BundleRejected("truncated", "the block list ends before its end record")
