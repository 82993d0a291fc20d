"""Moving a file's bytes into or out of a libvirt storage volume through a stream, in bounded memory.

The far side may be another machine (``qemu+ssh://``), so no path of the host is ever opened here: bytes go
through ``virStorageVolUpload``/``virStorageVolDownload`` and a ``virStream``. Each call hashes what it moves
(sha256 of the file's whole content, holes counted as the zeros they read as) and reports progress. Sparse
mode sends only the file's data sections and the lengths of its holes, so a 1 GiB image with 30 MB in it
moves 30 MB and lands sparse on the host.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 256 * 1024  # libvirt's RPC splits bigger messages anyway; this bounds what one call holds
ZEROS = bytes(CHUNK)

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


@dataclass(frozen=True)
class Transfer:
    """What one upload or download moved: the file's length, its sha256, and the bytes that travelled."""

    size: int
    sha256: str
    sent_bytes: int


class _Meter:
    """Hashes the file's content in order and reports progress."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.moved = 0
        self.digest = hashlib.sha256()
        self._progress = progress

    def data(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.done += len(chunk)
        self.moved += len(chunk)
        self._report()

    def hole(self, length: int) -> None:
        left = length
        while left > 0:
            step = min(left, CHUNK)
            self.digest.update(ZEROS[:step])
            left -= step
        self.done += length
        self._report()

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.done, self.total)

    def result(self) -> Transfer:
        return Transfer(size=self.done, sha256=self.digest.hexdigest(), sent_bytes=self.moved)


def _section_at(fd: int, size: int) -> tuple[bool, int]:
    """Whether the file offset of ``fd`` is in data, and how long that data or hole section runs."""
    cur = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        data = os.lseek(fd, cur, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        data = -1  # only a hole up to the end of the file is left
    if data < 0:
        in_data, length = False, size - cur
    elif data > cur:
        in_data, length = False, data - cur
    else:
        in_data, length = True, os.lseek(fd, cur, os.SEEK_HOLE) - cur
    os.lseek(fd, cur, os.SEEK_SET)
    return in_data, length


def send_file(stream: Any, source: Path, *, sparse: bool, progress: Progress | None = None) -> Transfer:
    """Send ``source`` into ``stream`` (already bound to ``vol.upload``) and finish it; abort it on failure."""
    size = source.stat().st_size
    meter = _Meter(size, progress)
    fd = os.open(source, os.O_RDONLY)
    try:
        if sparse:
            _send_sparse(stream, fd, size, meter)
        else:
            _send_dense(stream, fd, meter)
        stream.finish()
    except BaseException:
        _abort(stream)
        raise
    finally:
        os.close(fd)
    return meter.result()


def _send_dense(stream: Any, fd: int, meter: _Meter) -> None:
    while chunk := os.read(fd, CHUNK):
        _send_all(stream, chunk)
        meter.data(chunk)


def _send_all(stream: Any, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        sent = stream.send(bytes(view))
        if sent < 0:
            raise OSError(f"the libvirt stream refused data (send returned {sent})")
        view = view[sent:]


def _send_sparse(stream: Any, fd: int, size: int, meter: _Meter) -> None:
    def read(_stream: Any, nbytes: int, _opaque: Any) -> bytes:
        chunk = os.read(fd, min(nbytes, CHUNK))
        meter.data(chunk)
        return chunk

    def where(_stream: Any, _opaque: Any) -> list[Any]:
        in_data, length = _section_at(fd, size)
        return [in_data, length]

    def skip(_stream: Any, length: int, _opaque: Any) -> int:
        os.lseek(fd, length, os.SEEK_CUR)
        meter.hole(length)
        return 0

    stream.sparseSendAll(read, where, skip, None)


def receive_file(stream: Any, target: Path, *, sparse: bool, progress: Progress | None = None,
                 expected_size: int = 0) -> Transfer:
    """Write what ``stream`` (bound to ``vol.download``) yields into ``target`` (created, 0600), then fsync it."""
    meter = _Meter(expected_size, progress)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if sparse:
            _receive_sparse(stream, fd, meter)
        else:
            stream.recvAll(lambda _s, chunk, _o: _write_all(fd, chunk, meter), None)
        stream.finish()
        os.fsync(fd)
    except BaseException:
        _abort(stream)
        raise
    finally:
        os.close(fd)
    return meter.result()


def _write_all(fd: int, chunk: bytes, meter: _Meter) -> int:
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view):]
    meter.data(chunk)
    return len(chunk)


def _receive_sparse(stream: Any, fd: int, meter: _Meter) -> None:
    def hole(_stream: Any, length: int, _opaque: Any) -> int:
        end = os.lseek(fd, length, os.SEEK_CUR)
        os.ftruncate(fd, end)  # a trailing hole still gives the file its length
        meter.hole(length)
        return 0

    stream.sparseRecvAll(lambda _s, chunk, _o: _write_all(fd, chunk, meter), hole, None)


def hash_stream(stream: Any, *, sparse: bool, expected_size: int = 0) -> Transfer:
    """The sha256 of what ``stream`` (bound to ``vol.download``) yields, keeping none of it."""
    meter = _Meter(expected_size, None)

    def take(_stream: Any, chunk: bytes, _opaque: Any) -> int:
        meter.data(chunk)
        return len(chunk)

    def hole(_stream: Any, length: int, _opaque: Any) -> int:
        meter.hole(length)
        return 0

    try:
        if sparse:
            stream.sparseRecvAll(take, hole, None)
        else:
            stream.recvAll(take, None)
        stream.finish()
    except BaseException:
        _abort(stream)
        raise
    return meter.result()


def _abort(stream: Any) -> None:
    try:
        stream.abort()
    except Exception:  # the stream may already be closed by the error that brought us here
        pass
