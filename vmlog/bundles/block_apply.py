"""Writes an untrusted block list (bundle format 2) into a fresh overlay of the importer's own making.

The overlay is created here, on the verified local reference, so qemu never opens an image file
the sender wrote. Every record's structure is checked by the decoder; every reference is checked
here before use: a base reference must lie inside the verified base and a copy reference inside
blocks this same list wrote earlier, and in both cases the sha256 of the source bytes, read from
the importer's own files, must be the one the record carries. Any failure raises
:class:`BundleRejected`; the caller removes the staging directory, so nothing stays written.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from hypervisors import qemu_img
from vmlog.bundles.blocks import BASE, BLOCK_SIZE, DATA, ZERO, BlockDecoder, Record
from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.image_read import open_image
from vmlog.bundles.nbd import NbdImage


class BlockApplier:
    """Applies one disk's block list to ``path``, a new qcow2 overlay on ``reference``.

    ``base`` is the verified base image, the only place a ``BASE`` reference may read from. Feed
    decompressed bytes with :meth:`feed`; :meth:`finish` checks the list was complete and makes
    the overlay durable.
    """

    def __init__(
        self,
        path: Path,
        *,
        label: str,
        virtual_size: int,
        reference: tuple[Path, str],
        base: tuple[Path, str],
        base_size: int,
    ) -> None:
        self.path = Path(path)
        self.label = label
        self._virtual_size = virtual_size
        self._base_blocks = base_size // BLOCK_SIZE
        self._written = bytearray(-(-virtual_size // BLOCK_SIZE) // 8 + 1)
        ref_path, ref_format = reference
        rel = os.path.relpath(Path(ref_path).resolve(), self.path.parent.resolve())
        qemu_img.run(
            ["create", "-q", "-f", "qcow2", "-b", rel, "-F", ref_format, str(self.path), str(virtual_size)],
            cwd=self.path.parent,
        )
        self._stack = ExitStack()
        try:
            self._dst = self._stack.enter_context(NbdImage(self.path, "qcow2", writable=True))
            self._base = open_image(self._stack, Path(base[0]), base[1])  # a raw base is read with pread
        except BaseException:
            self._stack.close()
            raise
        self._decoder = BlockDecoder(self._apply, virtual_size=virtual_size)

    def feed(self, chunk: bytes) -> None:
        self._decoder.feed(chunk)

    @staticmethod
    def _edges(first: int, count: int) -> tuple[range, range, range]:
        """Blocks ``first`` to ``first + count``: bits before the first whole byte, whole bytes, bits after."""
        end = first + count
        head, tail = min(end, -(-first // 8) * 8), max(first, end // 8 * 8)
        if head >= tail:
            return range(first, end), range(0), range(0)
        return range(first, head), range(head >> 3, tail >> 3), range(tail, end)

    def _mark(self, first: int, count: int) -> None:
        """Set the bits of the blocks written: whole bytes at once, bit by bit only at the edges."""
        before, whole, after = self._edges(first, count)
        for n in (*before, *after):
            self._written[n >> 3] |= 1 << (n & 7)
        if whole:
            self._written[whole.start : whole.stop] = b"\xff" * len(whole)

    def _all_written(self, first: int, count: int) -> bool:
        before, whole, after = self._edges(first, count)
        if whole and self._written.count(0xFF, whole.start, whole.stop) != len(whole):
            return False
        return all(self._written[n >> 3] & (1 << (n & 7)) for n in (*before, *after))

    def _refused(self, record: Record, why: str) -> BundleRejected:
        return BundleRejected(
            "reference",
            f"the delta of disk {self.label!r} has a reference at block {record.first} that {why}",
            fix="ask the sender for a new bundle; this one was damaged or tampered with",
        )

    def _apply(self, record: Record) -> None:
        offset = record.first * BLOCK_SIZE
        length = min(record.count * BLOCK_SIZE, self._virtual_size - offset)
        if record.kind == DATA:
            self._dst.write_behind(offset, memoryview(record.data)[:length])
        elif record.kind == ZERO:
            self._dst.write_zeroes(offset, length)
        else:
            if length != record.count * BLOCK_SIZE:
                raise self._refused(record, "covers a partial block")
            if record.kind == BASE:
                if record.source + record.count > self._base_blocks:
                    raise self._refused(record, "points outside the base image")
                data = self._base.read(record.source * BLOCK_SIZE, length)
            else:
                if not self._all_written(record.source, record.count):
                    raise self._refused(record, "points at blocks the bundle did not write before it")
                data = self._dst.read(record.source * BLOCK_SIZE, length)
            if hashlib.sha256(data).digest() != record.sha256:
                what = "base image" if record.kind == BASE else "bundle's earlier blocks"
                raise self._refused(record, f"does not match the {what} it names")
            self._dst.write_behind(offset, data)
        self._mark(record.first, record.count)

    def finish(self) -> None:
        self._decoder.finish()
        self._dst.flush()
        self.close()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> BlockApplier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

