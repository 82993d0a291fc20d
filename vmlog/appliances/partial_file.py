"""Appending a download to its partial file: hashed on a worker thread, flushed as it arrives, resumable.

The bytes already in the partial file are hashed once before new ones are appended, so a resumed
download ends with the digests of the whole file. Whatever arrived is kept on disk when the stream
stops early (a cancel, Ctrl-C, a stall), for the next attempt to resume.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vmlog.appliances.digest import Digest
from vmlog.appliances.http_get import MirrorFailed, describe_network_error
from vmlog.errors import Cancelled
from vmlog.fsutil import fsync_dir

CHUNK = 1 << 20  # 1 MiB reads: few syscalls, few Python-level iterations
FLUSH_EVERY = 64 << 20  # start writeback of what arrived so the final fsync has little left to do
BUFFERS = 6  # chunks in flight between the network reader and the hashing thread

Progress = Callable[[int, int | None], None]


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("download cancelled; the partial file is kept and the next pull resumes it")


class _Hashers:
    """The declared digest and the store's sha256, fed on a worker thread.

    hashlib releases the GIL on large buffers, so hashing one chunk overlaps with receiving and
    writing the next; buffers circulate between a free queue and a work queue (no copies).
    """

    def __init__(self, algo: str) -> None:
        self.sha256 = hashlib.sha256()
        self.declared = self.sha256 if algo == "sha256" else hashlib.new(algo)
        self.free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(BUFFERS):
            self.free.put(bytearray(CHUNK))
        self.work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="vmlog-hash", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.work.get()) is not None:
            buf, n = item
            try:
                view = memoryview(buf)[:n]
                self.sha256.update(view)
                if self.declared is not self.sha256:
                    self.declared.update(view)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self.error = exc
            finally:
                self.free.put(buf)

    def feed(self, buf: bytearray, n: int) -> None:
        self.work.put((buf, n))

    def buffer(self) -> bytearray:
        return self.free.get()

    def finish(self) -> tuple[str, str]:
        self.work.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.sha256.hexdigest(), self.declared.hexdigest()

    def abandon(self) -> None:
        self.work.put(None)
        self.thread.join()


class _Flusher:
    """Runs ``fdatasync`` on a worker thread every ``FLUSH_EVERY`` bytes.

    The final fsync of a multi-GB file would otherwise stall for seconds after the last byte;
    flushing as we go overlaps the disk writes with the network transfer.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="vmlog-flush", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.stopping:
                return
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # the final fsync reports the problem

    def kick(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join()


def stream_into(
    resp: http.client.HTTPResponse,
    partial: Path,
    offset: int,
    want: Digest,
    total: int | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
) -> str:
    """Append ``resp``'s body to ``partial`` from ``offset``; return the whole file's sha256 if ``want`` matches."""
    hashers = _Hashers(want.algo)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
    done = offset
    finished = False
    flusher = _Flusher(fd)
    next_flush = offset + FLUSH_EVERY
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        if offset:
            _rehash_prefix(partial, offset, hashers)
        if progress:
            progress(done, total)
        last_report = time.monotonic()
        while True:
            check_cancel(cancel)
            buf = hashers.buffer()
            try:
                n = resp.readinto(buf)
            except (OSError, http.client.HTTPException) as exc:
                hashers.free.put(buf)
                raise MirrorFailed(describe_network_error(exc, timeout)) from exc
            if not n:
                hashers.free.put(buf)
                break
            view = memoryview(buf)[:n]
            written = 0
            while written < n:
                written += os.write(fd, view[written:])
            view.release()
            hashers.feed(buf, n)
            done += n
            if done >= next_flush:
                flusher.kick()
                next_flush = done + FLUSH_EVERY
            if total is not None and done > total:
                raise MirrorFailed(f"server sent more than the {total} bytes expected", integrity=True)
            now = time.monotonic()
            if progress and now - last_report >= 0.1:
                progress(done, total)
                last_report = now
        if total is not None and done < total:
            raise MirrorFailed(f"truncated: got {done} of {total} bytes")
        flusher.stop()
        os.fsync(fd)
        sha256, declared = hashers.finish()
        finished = True
        if progress:
            progress(done, total)
        if declared != want.hex:
            os.close(fd)
            fd = -1
            partial.unlink(missing_ok=True)  # wrong bytes are not worth resuming
            raise MirrorFailed(f"{want.algo} mismatch: got {declared}, expected {want.hex}", integrity=True)
        return sha256
    finally:
        flusher.stop()
        if not finished:
            hashers.abandon()
        if fd >= 0:
            try:
                os.fsync(fd)  # keep what arrived for the next attempt (cancel, Ctrl-C, stall)
            finally:
                os.close(fd)
            fsync_dir(partial.parent)


def _rehash_prefix(partial: Path, offset: int, hashers: _Hashers) -> None:
    """Feed the bytes already on disk to the hashers once, before appending to them."""
    with open(partial, "rb", buffering=0) as fh:
        remaining = offset
        while remaining:
            buf = hashers.buffer()
            n = fh.readinto(memoryview(buf)[: min(CHUNK, remaining)])
            if not n:
                hashers.free.put(buf)
                raise MirrorFailed("the partial file shrank while resuming")
            hashers.feed(buf, n)
            remaining -= n
