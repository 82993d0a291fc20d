"""Appending a download to its partial file: hashed on a worker thread, flushed as it arrives, bounded, resumable.

The bytes already in the partial file are hashed once before new ones are appended, so a resumed
download ends with the digests of the whole file. Whatever arrived is kept on disk when the stream
stops early (a cancel, Ctrl-C, a stall, a server too slow or past the deadline), for the next
attempt to resume. The body is read straight from the socket (:class:`~vmlog.appliances.http_get.BodyReader`),
one receive at a time, so cancellation and the limits are checked between receives however slowly
the server sends, and large buffers go to the disk and to the hashes without copies. A plain-HTTP
body, once the bytes read with the headers are written, moves socket -> pipe -> file inside the kernel
(:class:`_Splicer`) and is hashed from the page cache: no copy of it passes through Python.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import mmap
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vmlog.appliances.digest import Digest
from vmlog.appliances.http_get import (
    SPLICE_STEP,
    BodyReader,
    MirrorFailed,
    TransferLimits,
    TransferWatch,
    check_cancel,
    describe_network_error,
)
from vmlog.fsutil import fsync_dir

# Bytes received from the socket before they are written: small enough to be still in the CPU cache
# when they are written (with 4 MiB receives every byte went through main memory once more, and a
# pull ran at 0.5-0.6x `curl -o && sync`). CHUNK is what one hand-off to the hashing thread carries:
# larger, so that the two threads wake each other up rarely on a loaded machine.
RECEIVE = 256 << 10
CHUNK = 1 << 20
FLUSH_EVERY = 64 << 20  # start writeback of what arrived so the final fsync has little left to do
BUFFERS = 8  # chunks in flight between the network reader and the hashing thread
SPACE_CHECK_EVERY = 64 << 20  # with no size announced, how often the free space is looked at

Progress = Callable[[int, int | None], None]
__all__ = ["CHUNK", "Progress", "check_cancel", "hash_file", "stream_into"]


class _Hashers:
    """The declared digest and the store's sha256, fed on a worker thread.

    hashlib releases the GIL on large buffers, so hashing one chunk overlaps with receiving and
    writing the next; buffers circulate between a free queue and a work queue (no copies). Every
    wait is bounded and looks at ``cancel``, so neither thread can keep the other waiting for ever.
    """

    def __init__(self, algo: str, cancel: threading.Event | None) -> None:
        self.sha256 = hashlib.sha256()
        self.declared = self.sha256 if algo == "sha256" else hashlib.new(algo)
        self.cancel = cancel
        self.free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(BUFFERS):
            self.free.put(bytearray(CHUNK))
        # (buffer, bytes) or, for bytes spliced into the file, (token buffer, bytes, file offset)
        self.work: queue.Queue[tuple[bytearray, int] | tuple[bytearray, int, int] | None] = queue.Queue()
        self.file_fd = -1  # where spliced bytes are read back from (the page cache, through a mapping)
        self.error: BaseException | None = None
        self.dropping = False  # set when the download stopped: what is still queued is not hashed
        self.thread = threading.Thread(target=self._run, name="vmlog-hash", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.work.get()) is not None:
            buf, n = item[0], item[1]
            if self.dropping:
                self.free.put(buf)
                continue
            try:
                if len(item) == 3:
                    self._hash_range(item[2], n)  # type: ignore[misc]
                else:
                    with memoryview(buf) as whole, whole[:n] as view:
                        self._update(view)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self.error = exc
            finally:
                self.free.put(buf)

    def _update(self, view: memoryview | mmap.mmap) -> None:
        self.sha256.update(view)
        if self.declared is not self.sha256:
            self.declared.update(view)

    def _hash_range(self, offset: int, n: int) -> None:
        """Hash bytes of the file where they are, in the page cache (no copy into a buffer)."""
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        with mmap.mmap(self.file_fd, n + offset - start, flags=flags, prot=mmap.PROT_READ, offset=start) as mapped:
            with memoryview(mapped) as whole, whole[offset - start :] as view:
                self._update(view)

    def feed_range(self, token: bytearray, n: int, offset: int) -> None:
        """Hash ``n`` bytes at ``offset`` of the file (``token``, from :meth:`buffer`, bounds what is in flight)."""
        self.work.put((token, n, offset))

    def feed(self, buf: bytearray, n: int) -> None:
        self.work.put((buf, n))

    def buffer(self) -> bytearray:
        while True:
            try:
                return self.free.get(timeout=0.25)
            except queue.Empty:
                check_cancel(self.cancel)
                if not self.thread.is_alive():  # pragma: no cover - the thread only ends on None
                    raise RuntimeError("the hashing thread ended early") from None

    def give_back(self, buf: bytearray) -> None:
        self.free.put(buf)

    def read_back_from(self, partial: Path) -> None:
        """Spliced bytes are hashed from ``partial`` itself (opened once, closed with the hashers)."""
        if self.file_fd < 0:
            self.file_fd = os.open(partial, os.O_RDONLY)

    def _close_file(self) -> None:
        if self.file_fd >= 0:
            os.close(self.file_fd)
            self.file_fd = -1

    def finish(self) -> tuple[str, str]:
        self.work.put(None)
        self.thread.join()
        self._close_file()
        if self.error is not None:
            raise self.error
        return self.sha256.hexdigest(), self.declared.hexdigest()

    def abandon(self) -> None:
        """Stop hashing at once (a cancel, Ctrl-C, a failed mirror): a Ctrl-C must not wait for queued buffers."""
        self.dropping = True
        self.work.put(None)
        self.thread.join(timeout=0.5)  # a daemon thread: an interpreter that exits does not wait for it
        if not self.thread.is_alive():
            self._close_file()


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
        self.thread.join(timeout=30.0)


def write_all(fd: int, view: memoryview, partial: Path) -> None:
    """Write ``view`` whole; a full disk names the partial file (the command line turns it into its fix)."""
    written = 0
    try:
        while written < len(view):
            written += os.write(fd, view[written:])
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(exc.errno, os.strerror(exc.errno), str(partial)) from exc
        raise


def _check_space_for_unknown_size(partial: Path, done: int, limits: TransferLimits) -> None:
    """With no size announced, stop before the body fills the disk or passes the size limit."""
    if done > limits.max_unknown_size:
        raise MirrorFailed(
            f"the server announced no size and sent more than {limits.max_unknown_size} bytes; stopped",
            integrity=True,
        )
    free = shutil.disk_usage(partial.parent).free
    if free < limits.reserve:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (a download of unknown size stopped)", str(partial))


def _fill_and_write(
    reader: BodyReader, buf: bytearray, fd: int, partial: Path, check: Callable[[int], None]
) -> tuple[int, BaseException | None]:
    """Fill ``buf`` from the socket one :data:`RECEIVE` slice at a time, each written as soon as it arrived.

    A slice is written while it is still in the CPU cache; the whole buffer then goes to the hashing
    thread in one hand-off. Returns early (bytes so far, and what stopped the body if anything did)
    when the body ends, stops or the server pauses, so progress and the limits keep their pace.
    """
    got = 0
    with memoryview(buf) as whole:
        while got < len(whole):
            with whole[got : got + RECEIVE] as part:
                n, stopped = reader.fill(part, check)
                asked = len(part)
                if n:
                    with part[:n] as arrived:
                        write_all(fd, arrived, partial)  # what arrived is kept, also when the body stopped early
            got += n
            if stopped is not None or n < asked:
                return got, stopped
    return got, None


class _Splicer:
    """The body moved socket -> pipe -> file inside the kernel; the hashing thread reads it back from the page cache.

    Against receiving into a buffer and writing it, this saves two copies of every byte through
    user space, which on a loaded machine is the CPU time that separated a pull from ``curl -o``.
    """

    def __init__(self, fd: int, partial: Path) -> None:
        self.fd, self.partial = fd, partial
        self.pipe_out, self.pipe_in = os.pipe()
        try:
            fcntl.fcntl(self.pipe_in, fcntl.F_SETPIPE_SZ, SPLICE_STEP)
        except (OSError, AttributeError):  # above the system's pipe-max-size: the default capacity does
            pass

    def sink(self, n: int) -> None:
        """Move the ``n`` bytes in the pipe into the file, at its position."""
        moved = 0
        try:
            while moved < n:
                moved += os.splice(self.pipe_out, self.fd, n - moved)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(exc.errno, os.strerror(exc.errno), str(self.partial)) from exc
            raise

    def move(self, reader: BodyReader, check: Callable[[int], None]) -> tuple[int, BaseException | None]:
        return reader.splice(self.pipe_in, CHUNK, self.sink, check)

    def close(self) -> None:
        os.close(self.pipe_in)
        os.close(self.pipe_out)


def _receive(
    reader: BodyReader,
    fd: int,
    partial: Path,
    hashers: _Hashers,
    watch: TransferWatch,
    done: int,
    total: int | None,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> int:
    """Move the body from the socket into the file and the hashers; return the file's new length."""
    flusher = _Flusher(fd)
    splicer: _Splicer | None = None
    next_flush = done + FLUSH_EVERY
    next_space_check = done + SPACE_CHECK_EVERY
    last_report = time.monotonic()
    try:
        while True:
            buf = hashers.buffer()
            try:
                if splicer is None and reader.can_splice():
                    hashers.read_back_from(partial)
                    splicer = _Splicer(fd, partial)
                if splicer is not None:
                    n, stopped = splicer.move(reader, lambda got: watch.check(got, cancel))
                else:
                    n, stopped = _fill_and_write(reader, buf, fd, partial, lambda got: watch.check(got, cancel))
            except BaseException:
                hashers.give_back(buf)
                raise
            if n and splicer is not None:
                hashers.feed_range(buf, n, done)  # ``done`` is where these bytes start in the file
            elif n:
                hashers.feed(buf, n)
            else:
                hashers.give_back(buf)
            done += n
            if stopped is not None:
                raise stopped
            if not n:
                return done
            if total is not None and done > total:
                raise MirrorFailed(f"server sent more than the {total} bytes expected", integrity=True)
            if done >= next_flush:
                flusher.kick()
                next_flush = done + FLUSH_EVERY
            if total is None and done >= next_space_check:
                _check_space_for_unknown_size(partial, done, watch.limits)
                next_space_check = done + SPACE_CHECK_EVERY
            now = time.monotonic()
            if progress and now - last_report >= 0.1:
                progress(done, total)
                last_report = now
    finally:
        flusher.stop()
        if splicer is not None:
            splicer.close()


def stream_into(
    resp: http.client.HTTPResponse,
    partial: Path,
    offset: int,
    want: Digest,
    total: int | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
    limits: TransferLimits | None = None,
) -> str:
    """Append ``resp``'s body to ``partial`` from ``offset``; return the whole file's sha256 if ``want`` matches."""
    limits = limits or TransferLimits()
    watch = TransferWatch(limits, timeout)
    hashers = _Hashers(want.algo, cancel)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
    finished = False
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        if offset:
            rehash_prefix(partial, offset, hashers)
        if progress:
            progress(offset, total)
        try:
            done = _receive(BodyReader(resp, timeout), fd, partial, hashers, watch, offset, total, progress, cancel)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise MirrorFailed(describe_network_error(exc, timeout)) from exc
        if total is not None and done < total:
            raise MirrorFailed(f"truncated: got {done} of {total} bytes")
        os.fsync(fd)
        sha256, declared = hashers.finish()
        finished = True
        if progress:
            progress(done, total)
        if declared != want.hex:
            os.close(fd)
            fd = -1
            partial.unlink(missing_ok=True)  # wrong bytes are not worth resuming
            raise MirrorFailed(f"{want.algo} mismatch: got {declared}, expected {want.hex}", wrong_bytes=True)
        return sha256
    finally:
        if not finished:
            hashers.abandon()
        if fd >= 0 and finished:
            os.close(fd)  # complete, matching and synced: the store links it in and makes that durable
        elif fd >= 0:
            _keep(fd, partial)


def _keep(fd: int, partial: Path) -> None:
    """Close the partial file, durable, for the next attempt (cancel, Ctrl-C, a stall); never raise over the cause."""
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    try:
        fsync_dir(partial.parent)
    except OSError:
        pass


def rehash_prefix(partial: Path, offset: int, hashers: _Hashers) -> None:
    """Feed the bytes already on disk to the hashers once, before appending to them."""
    with open(partial, "rb", buffering=0) as fh:
        remaining = offset
        while remaining:
            buf = hashers.buffer()
            with memoryview(buf) as whole:
                n = fh.readinto(whole[: min(CHUNK, remaining)])
            if not n:
                hashers.give_back(buf)
                raise MirrorFailed("the partial file shrank while resuming")
            hashers.feed(buf, n)
            remaining -= n


def hash_file(partial: Path, want: Digest, cancel: threading.Event | None) -> str | None:
    """The sha256 of a partial file that is already complete, if its bytes are the ones ``want`` names."""
    hashers = _Hashers(want.algo, cancel)
    try:
        rehash_prefix(partial, partial.stat().st_size, hashers)
    except BaseException:
        hashers.abandon()
        raise
    sha256, declared = hashers.finish()
    return sha256 if declared == want.hex else None
