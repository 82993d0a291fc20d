"""Where each 4 KiB block of a base image lives, by a cheap fingerprint: what lets a delta send copies as references.

A guest that copies or moves a file, or reinstalls a package, writes blocks the base already
holds at other offsets. Finding them needs an index of the base's blocks. The fingerprint is a
sample of each block's bytes (no hashing: building the index of a 1 GiB base then costs about a
read of it); a hit is only a candidate, which the delta builder confirms by comparing the bytes.
The index depends only on the base's content, so it is built once per base and cached by the
base's sha256.
"""

from __future__ import annotations

import os
import struct
from contextlib import ExitStack
from pathlib import Path

from vmlog.bundles.blocks import BLOCK_SIZE
from vmlog.bundles.files import temp_name
from vmlog.bundles.image_read import open_image

_MAGIC = b"VMLBIDX1"
_ENTRY = struct.Struct(">24sI")
_READ = 4 << 20
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_ZERO_KEY = bytes(24)


def fingerprint(block: bytes) -> bytes:
    """24 bytes sampled from the start, middle and end of a 4 KiB block (the same as :meth:`BaseBlockIndex.build`)."""
    return block[0:8] + block[2048:2056] + block[4088:4096]


class BaseBlockIndex:
    """Fingerprint -> block number of the base, for the base's non-zero blocks (first one of each)."""

    def __init__(self, entries: dict[bytes, int]) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: bytes) -> int | None:
        """The first base block whose :func:`fingerprint` is ``key`` (a candidate: compare the bytes)."""
        return self._entries.get(key)

    @classmethod
    def build(cls, image: Path, fmt: str) -> BaseBlockIndex:
        """Read ``image`` once and fingerprint every whole, non-zero block."""
        entries: dict[bytes, int] = {}
        with ExitStack() as stack:
            img = open_image(stack, image, fmt)
            size = img.size - img.size % BLOCK_SIZE
            for off in range(0, size, _READ):
                chunk = img.read(off, min(_READ, size - off))
                first = off // BLOCK_SIZE
                for i in range(0, len(chunk), BLOCK_SIZE):
                    key = chunk[i : i + 8] + chunk[i + 2048 : i + 2056] + chunk[i + 4088 : i + 4096]
                    if key == _ZERO_KEY and chunk[i : i + BLOCK_SIZE] == _ZERO_BLOCK:
                        continue
                    if key not in entries:
                        entries[key] = first + i // BLOCK_SIZE
        return cls(entries)

    def save(self, path: Path) -> None:
        tmp = temp_name(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(_MAGIC + len(self._entries).to_bytes(8, "big"))
                fh.write(b"".join(_ENTRY.pack(k, v) for k, v in self._entries.items()))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> BaseBlockIndex | None:
        """The cached index, or None if it is missing or not an index this vmlog wrote."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        count = int.from_bytes(data[8:16], "big") if data[:8] == _MAGIC else -1
        if count < 0 or len(data) != 16 + count * _ENTRY.size:
            return None
        return cls(dict(_ENTRY.iter_unpack(memoryview(data)[16:])))


def base_index(image: Path, fmt: str, sha256: str, cache_dir: Path | None) -> BaseBlockIndex:
    """The index of the base whose content has ``sha256``: from ``cache_dir`` if built before, else built now."""
    if cache_dir is None:
        return BaseBlockIndex.build(image, fmt)
    path = Path(cache_dir) / f"{sha256}.blkidx"
    index = BaseBlockIndex.load(path)
    if index is None:
        index = BaseBlockIndex.build(image, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
    return index
