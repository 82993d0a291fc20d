"""Reading the guest bytes of a trusted, vmlog-made image: raw files directly, any other format through qemu-nbd."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

from vmlog.bundles.nbd import NbdImage


class Readable(Protocol):
    """What the delta builder reads guest bytes from: a raw file or a qemu-nbd export."""

    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def read_many(self, pieces: Iterable[tuple[int, int]]) -> Iterator[tuple[int, bytes]]: ...


class _RawFile:
    """A raw image read directly with ``pread``: the common base needs no qemu-nbd round trips."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        out = os.pread(self._fd, length, offset)
        return out if len(out) == length else out + bytes(length - len(out))

    def read_many(self, pieces: Iterable[tuple[int, int]]) -> Iterator[tuple[int, bytes]]:
        """``(offset, bytes)`` of each ``(offset, length)`` piece, in order (the page cache reads ahead)."""
        for offset, length in pieces:
            yield offset, self.read(offset, length)

    def close(self) -> None:
        os.close(self._fd)


def open_image(stack: ExitStack, path: Path, fmt: str) -> Readable:
    """``path`` opened for reading guest bytes until ``stack`` closes: directly if raw, else through qemu-nbd."""
    if fmt == "raw":
        raw = _RawFile(path)
        stack.callback(raw.close)
        return raw
    return stack.enter_context(NbdImage(path, fmt))
