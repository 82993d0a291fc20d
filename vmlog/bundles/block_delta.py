"""Builds a disk's block list (bundle format 2): the 4 KiB blocks that differ from the reference, deduplicated.

Only extents that ``qemu-img map`` reports as allocated above the reference are read (the work
grows with the change, not with the disk); each of their 4 KiB blocks is compared with the
reference at the same offset and dropped if equal. A differing block becomes, in this order of
preference: a zero run; a reference to an earlier block of this delta with the same bytes; a
reference to a base block with the same bytes (a file copied or moved in the guest); or data.
Candidates are found by fingerprint and always confirmed by comparing the bytes, so a reference
is never wrong. Everything goes straight into the compressor: one pass, bounded memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from hypervisors import qemu_img
from vmlog.bundles.block_index import BaseBlockIndex, fingerprint
from vmlog.bundles.blocks import BASE, BLOCK_SIZE, COPY, DATA, MAX_RUN, ZERO, BlockEncoder
from vmlog.bundles.delta import COMPARE_CHUNK, DeltaStats, chain_info, map_extents, ranges_above
from vmlog.bundles.image_read import Readable, open_image
from vmlog.bundles.nbd import NbdImage
from vmlog.errors import InvalidInput

MAX_SEEN = 1 << 20  # fingerprints of this delta's own blocks kept for COPY references (4 GiB of change, ~100 MB)
_WINDOW = 256  # blocks read ahead from a reference's source, so a copied file costs one read per MiB
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_CLUSTER = 65536  # compared whole first; only differing clusters are compared block by block
_ZERO_CLUSTER = bytes(_CLUSTER)

Progress = Callable[[int, int], None]  # (bytes scanned so far, bytes to scan)


@dataclass(frozen=True)
class BlockDeltaStats(DeltaStats):
    """A block delta's figures: those of :class:`DeltaStats` and the bytes sent as references."""

    base_ref_bytes: int = 0
    copy_ref_bytes: int = 0


class _SourceWindow:
    """Reads single blocks of one image, a window at a time, to confirm reference candidates."""

    def __init__(self, image: Readable) -> None:
        self._image = image
        self._start = -1
        self._data = b""

    def holds(self, n: int) -> bool:
        """Whether block ``n`` is a whole block of the image."""
        return 0 <= n < self._image.size // BLOCK_SIZE

    def _window_at(self, n: int, count: int) -> int:
        """The offset of block ``n`` in the window, read anew unless it holds blocks ``n`` to ``n + count``."""
        end = self._start + len(self._data) // BLOCK_SIZE
        if not (self._start <= n and n + count <= end):
            self._start = n
            size = self._image.size - self._image.size % BLOCK_SIZE
            self._data = self._image.read(n * BLOCK_SIZE, min(_WINDOW * BLOCK_SIZE, size - n * BLOCK_SIZE))
        return (n - self._start) * BLOCK_SIZE

    def block(self, n: int) -> bytes:
        i = self._window_at(n, 1)
        return self._data[i : i + BLOCK_SIZE]

    def matches(self, n: int, data: bytes) -> bool:
        """Whether the image holds ``data`` (whole blocks, at most a window) from block ``n`` on: no copy made."""
        count = len(data) // BLOCK_SIZE
        return self.holds(n + count - 1) and self._data.startswith(data, self._window_at(n, count))


class _Runs:
    """Merges consecutive blocks of one kind (and, for references, consecutive sources) into records."""

    def __init__(self, encoder: BlockEncoder) -> None:
        self.enc = encoder
        self.kind = -1
        self.first = self.count = self.source = 0
        self.data = bytearray()
        self.sha = hashlib.sha256()
        self.bytes = {DATA: 0, ZERO: 0, BASE: 0, COPY: 0}

    def add(self, kind: int, block: int, payload: bytes | memoryview, source: int = 0) -> None:
        if (
            kind != self.kind
            or block != self.first + self.count
            or self.count >= MAX_RUN
            or (kind in (BASE, COPY) and source != self.source + self.count)
        ):
            self.flush()
            self.kind, self.first, self.source = kind, block, source
        self.count += 1
        self.bytes[kind] += BLOCK_SIZE
        if kind == DATA:
            self.data += payload
        elif kind != ZERO:
            self.sha.update(payload)

    def add_base_span(self, block: int, payload: bytes, source: int) -> None:
        """Blocks of ``payload`` from ``block`` on, as the base's blocks from ``source`` on, in as few runs as can."""
        count = len(payload) // BLOCK_SIZE
        done = 0
        while done < count:
            if (
                self.kind != BASE
                or block + done != self.first + self.count
                or self.count >= MAX_RUN
                or source + done != self.source + self.count
            ):
                self.flush()
                self.kind, self.first, self.source = BASE, block + done, source + done
            take = min(count - done, MAX_RUN - self.count)
            self.count += take
            self.bytes[BASE] += take * BLOCK_SIZE
            self.sha.update(payload[done * BLOCK_SIZE : (done + take) * BLOCK_SIZE])
            done += take

    def flush(self) -> None:
        if self.count:
            if self.kind == DATA:
                self.enc.data(self.first, self.data)
            elif self.kind == ZERO:
                self.enc.zero(self.first, self.count)
            else:
                self.enc.reference(self.kind, self.first, self.count, self.source, self.sha.digest())
        self.kind, self.count = -1, 0
        self.data = bytearray()
        self.sha = hashlib.sha256()


def block_follows(runs: _Runs, n: int) -> bool:
    """Whether block ``n`` would extend the record being built."""
    return runs.count > 0 and n == runs.first + runs.count and runs.count < MAX_RUN


class _Classifier:
    """Decides, block by block, how a differing block travels."""

    def __init__(self, runs: _Runs, src: Readable, base: Readable | None, index: BaseBlockIndex | None) -> None:
        self.runs = runs
        self.own = _SourceWindow(src)
        self.base = _SourceWindow(base) if base is not None else None
        self.lookup = index.lookup if index is not None and base is not None and len(index) else None
        self.seen: dict[int, int] = {}
        self._add = runs.add

    def block(self, n: int, data: bytes) -> None:
        if data == _ZERO_BLOCK:
            self.runs.add(ZERO, n, data)
            return
        if len(data) < BLOCK_SIZE:  # a disk whose size is not a multiple of 4 KiB: its last piece
            self.runs.add(DATA, n, bytes(data) + bytes(BLOCK_SIZE - len(data)))
            return
        runs = self.runs
        if runs.kind == BASE and block_follows(runs, n) and self.base is not None:
            # a copied file continues where its previous block came from: check that before any lookup
            guess = runs.source + runs.count
            if self.base.holds(guess) and self.base.block(guess) == data:
                self._add(BASE, n, data, guess)
                return
        key = fingerprint(data)
        earlier = self.seen.get(key)
        if earlier is not None and self.own.block(earlier) == data:
            self._add(COPY, n, data, earlier)
            return
        found = self.lookup(key) if self.lookup is not None else None
        if found is not None and self.base is not None and self.base.block(found) == data:
            self._add(BASE, n, data, found)
            return
        if len(self.seen) < MAX_SEEN:
            self.seen.setdefault(key, n)
        self._add(DATA, n, data)

    def base_cluster(self, n: int, cluster: bytes) -> bool:
        """Take the whole ``cluster`` (blocks from ``n`` on) at once if it continues the base run being built.

        Why: a copied file is one long base run; confirming it a cluster at a time instead of a block
        at a time saves most of the per-block work. A block of it that equals the reference travels
        as part of the run: the importer writes the same bytes either way.
        """
        runs = self.runs
        if self.base is None or runs.kind != BASE or not runs.count or n != runs.first + runs.count:
            return False
        source = runs.source + runs.count
        if len(cluster) % BLOCK_SIZE or not self.base.matches(source, cluster):
            return False
        runs.add_base_span(n, cluster, source)
        return True

    def zero_cluster(self, n: int) -> None:
        for i in range(_CLUSTER // BLOCK_SIZE):
            self.runs.add(ZERO, n + i, b"")


def _compare_chunk(off: int, new: bytes, old: bytes, cls: _Classifier) -> None:
    """Hand every 4 KiB block of ``new`` that differs from ``old`` to ``cls``, a 64 KiB cluster at a time.

    ``startswith`` at an offset compares without copying one side (memoryview comparisons are slower still).
    """
    for cpos in range(0, len(new), _CLUSTER):
        before = old[cpos : cpos + _CLUSTER]
        if new.startswith(before, cpos):
            continue
        cluster = new[cpos : cpos + _CLUSTER]
        if cluster == _ZERO_CLUSTER:
            cls.zero_cluster((off + cpos) // BLOCK_SIZE)
            continue
        first = (off + cpos) // BLOCK_SIZE
        if cls.base_cluster(first, cluster):
            continue
        for pos in range(0, len(cluster), BLOCK_SIZE):
            piece = cluster[pos : pos + BLOCK_SIZE]
            if not before.startswith(piece, pos):
                cls.block(first + pos // BLOCK_SIZE, piece)


def _pieces(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` cut into reads of at most :data:`COMPARE_CHUNK` bytes."""
    return [(off, min(COMPARE_CHUNK, end - off)) for start, end in ranges for off in range(start, end, COMPARE_CHUNK)]


def _scan(src: Readable, ref: Readable, ranges: list[tuple[int, int]], cls: _Classifier, progress: Progress) -> int:
    """Compare ``src`` with ``ref`` over ``ranges``, both read with requests in flight ahead of the compare."""
    pieces = _pieces(ranges)
    total = sum(n for _off, n in pieces)
    scanned = 0
    for (off, new), (_off, old) in zip(src.read_many(pieces), ref.read_many(pieces), strict=True):
        scanned += len(new)
        progress(scanned, total)
        if new != old:
            _compare_chunk(off, new, old, cls)
    return scanned


@dataclass
class _Opened:
    """The images and facts a delta needs, gathered with the slow process start-ups overlapped."""

    size: int
    ranges: list[tuple[int, int]]
    src: Readable
    ref: Readable


def _open_inputs(stack: ExitStack, top: Path, top_format: str, reference: Path, reference_format: str) -> _Opened:
    """qemu-nbd for ``top`` (and a non-raw reference) while ``qemu-img info --backing-chain`` and ``map`` run.

    Why overlapped: each is a process start-up of 20-60 ms, and they are independent; run in turn
    they were most of the export of a small change.
    """
    with ThreadPoolExecutor(2, thread_name_prefix="bundle-open") as pool:
        chain_f = pool.submit(chain_info, top, top_format)
        map_f = pool.submit(map_extents, top, top_format)
        # qemu-nbd is started from this thread: it gets PR_SET_PDEATHSIG, and would die with a pool thread
        src = stack.enter_context(NbdImage(top, top_format))
        ref = open_image(stack, reference, reference_format)
    chain = chain_f.result()
    files = [Path(e["filename"]).resolve() for e in chain]
    depth = files.index(reference) if reference in files else None
    size = chain[0]["virtual-size"]
    ref_size = chain[depth]["virtual-size"] if depth is not None else qemu_img.info(reference, reference_format)[
        "virtual-size"
    ]
    if ref_size != size:
        raise InvalidInput(
            f"disk {top.name} and its reference {reference.name} differ in size",
            fix="export disks that keep the base image's size",
        )
    if depth == 0:
        ranges: list[tuple[int, int]] = []
    elif depth is None:
        ranges = [(0, size)] if size else []
    else:
        ranges = ranges_above(map_f.result(), depth, size)
    return _Opened(size, ranges, src, ref)


def write_block_delta(
    top: Path,
    top_format: str,
    reference: Path,
    reference_format: str,
    sink: Callable[[bytes | bytearray | memoryview], object],
    *,
    base: tuple[Path, str] | None = None,
    index: BaseBlockIndex | None = None,
    progress: Progress = lambda _done, _total: None,
) -> BlockDeltaStats:
    """Write into ``sink`` the block list of what ``top`` shows the guest that ``reference`` does not.

    ``base`` (image, format) with its ``index`` lets blocks found in the base travel as references.
    """
    top, reference = Path(top).resolve(), Path(reference).resolve()
    with ExitStack() as stack:
        opened = _open_inputs(stack, top, top_format, reference, reference_format)
        encoder = BlockEncoder(sink, opened.size)
        runs = _Runs(encoder)
        base_img = None
        if base is not None and index is not None and len(index):
            same = Path(base[0]).resolve() == reference
            base_img = opened.ref if same else open_image(stack, Path(base[0]), base[1])
        cls = _Classifier(runs, opened.src, base_img, index)
        scanned = _scan(opened.src, opened.ref, opened.ranges, cls, progress)
    runs.flush()
    encoder.close()
    b = runs.bytes
    return BlockDeltaStats(opened.size, b[DATA], b[ZERO], scanned, b[BASE], b[COPY])
