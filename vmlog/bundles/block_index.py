"""Where each 4 KiB block of a base image lives, by a cheap fingerprint: what lets a delta send copies as references.

A guest that copies or moves a file, or reinstalls a package, writes blocks the base already
holds at other offsets. Finding them needs an index of the base's blocks. The fingerprint is a
64-bit mix of a sample of each block's bytes (no hashing of the whole block: building the index of
a base then costs about a read of it); a hit is only a candidate, which the delta builder confirms
by comparing the bytes. The index depends only on the base's content, so it is built once per base
and cached by the base's sha256.

Why a sorted file and not a dict: a dict costs about 110 bytes per block (550 MB for a 20 GiB base)
and seconds to load; the index file holds 12 bytes per block (sorted 64-bit keys, then 32-bit block
numbers), is memory-mapped, and answers a lookup with a binary search that touches a few pages.
Building it keeps only those 12 bytes per block in memory, sorted one key range at a time.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from array import array
from bisect import bisect_left
from contextlib import ExitStack
from pathlib import Path

from vmlog.bundles.blocks import BLOCK_SIZE
from vmlog.bundles.files import temp_name
from vmlog.bundles.image_read import open_image

_MAGIC = b"VMLBIDX2" if sys.byteorder == "little" else b"VMLBIDB2"  # native order: mapped as is
_HEADER = struct.Struct("<8sQ")
_READ = 8 << 20
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_CLUSTER = 65536
_ZERO_CLUSTER = bytes(_CLUSTER)
_ZERO_READ = bytes(_READ)
_MASK = (1 << 64) - 1
_MIX_B = 0x9E3779B97F4A7C15
_MIX_C = 0xC2B2AE3D27D4EB4F
_SAMPLE = struct.Struct("<Q2040xQ2032xQ")  # the words at 0, 2048 and 4088
_PARTS = 256  # key ranges sorted one at a time while building
_MAX_BLOCKS = 1 << 32


def fingerprint(block: bytes | memoryview, pos: int = 0) -> int:
    """The 64-bit key of the 4 KiB block at ``pos`` of ``block``: words at 0, 2048 and 4088 mixed.

    0 means "sampled words all zero" (such blocks are checked against a zero block first).
    """
    a, b, c = _SAMPLE.unpack_from(block, pos)
    return (a ^ (b * _MIX_B) ^ (c * _MIX_C)) & _MASK


class BaseBlockIndex:
    """Key -> block number of the base, for the base's non-zero blocks (the first one of each key)."""

    def __init__(self, keys: memoryview | array, blocks: memoryview | array, keep: object = None) -> None:
        self._keys = keys
        self._blocks = blocks
        self._keep = keep  # the mmap the views point into

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, key: int) -> int | None:
        """The first base block whose :func:`fingerprint` is ``key`` (a candidate: compare the bytes)."""
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            return int(self._blocks[i])
        return None

    @classmethod
    def build(cls, image: Path, fmt: str) -> BaseBlockIndex:
        """Read ``image`` once and fingerprint every whole, non-zero block."""
        parts = [(array("Q"), array("I")) for _ in range(_PARTS)]
        with ExitStack() as stack:
            img = open_image(stack, image, fmt)
            size = img.size - img.size % BLOCK_SIZE
            if size // BLOCK_SIZE >= _MAX_BLOCKS:
                return cls(array("Q"), array("I"))
            for off in range(0, size, _READ):
                chunk = img.read(off, min(_READ, size - off))
                if chunk == _ZERO_READ[: len(chunk)]:  # a hole or an empty part of the disk: no Python loop over it
                    continue
                _add_blocks(chunk, off // BLOCK_SIZE, parts)
        return cls(*_sorted_unique(parts))

    def save(self, path: Path) -> None:
        tmp = temp_name(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(_HEADER.pack(_MAGIC, len(self._keys)))
                fh.write(memoryview(self._keys).cast("B"))
                fh.write(memoryview(self._blocks).cast("B"))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> BaseBlockIndex | None:
        """The cached index, memory-mapped; None if it is missing or not an index this vmlog wrote."""
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < _HEADER.size:
                    return None
                magic, count = _HEADER.unpack(fh.read(_HEADER.size))
                if magic != _MAGIC or size != _HEADER.size + count * 12:
                    return None
                if count == 0:
                    return cls(array("Q"), array("I"))
                mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError:
            return None
        view = memoryview(mapped)
        keys = view[_HEADER.size : _HEADER.size + count * 8].cast("Q")
        blocks = view[_HEADER.size + count * 8 :].cast("I")
        return cls(keys, blocks, mapped)


def _add_blocks(chunk: bytes, first: int, parts: list[tuple[array, array]]) -> None:
    """Key and number of every non-zero block of ``chunk`` (block ``first`` onwards), into the part of its key."""
    for cpos in range(0, len(chunk), _CLUSTER):
        if chunk.startswith(_ZERO_CLUSTER, cpos):
            continue
        for i in range(cpos, min(cpos + _CLUSTER, len(chunk)), BLOCK_SIZE):
            key = fingerprint(chunk, i)
            if key == 0 and chunk[i : i + BLOCK_SIZE] == _ZERO_BLOCK:
                continue
            keys, blocks = parts[key >> 56]
            keys.append(key)
            blocks.append(first + i // BLOCK_SIZE)


def _sorted_unique(parts: list[tuple[array, array]]) -> tuple[array, array]:
    """All parts' (key, block) pairs sorted by key, keeping the lowest block of each key."""
    keys_out, blocks_out = array("Q"), array("I")
    for i, (keys, blocks) in enumerate(parts):
        pairs = sorted(zip(keys, blocks, strict=True))
        parts[i] = (array("Q"), array("I"))  # free the part before the next one is sorted
        last = -1
        for key, block in pairs:
            if key != last:
                keys_out.append(key)
                blocks_out.append(block)
                last = key
    return keys_out, blocks_out


def base_index(image: Path, fmt: str, sha256: str, cache_dir: Path | None) -> BaseBlockIndex:
    """The index of the base whose content has ``sha256``: from ``cache_dir`` if built before, else built now."""
    if cache_dir is None:
        return BaseBlockIndex.build(image, fmt)
    path = Path(cache_dir) / f"{sha256}.blkidx"
    index = BaseBlockIndex.load(path)
    if index is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        BaseBlockIndex.build(image, fmt).save(path)
        index = BaseBlockIndex.load(path)
        assert index is not None
    return index
