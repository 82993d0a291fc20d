"""Verified, resumable image downloads into the image store (standard library HTTP only).

A download streams into ``<downloads>/<algo>-<hex>.part`` while the declared digest (and the
store's sha256) are computed on the same bytes; only a complete, matching file is moved into the
store. The partial file survives a cancel, Ctrl-C, a stall or a dropped connection and is resumed
with ``Range:``; a server that ignores ``Range`` makes us start again from zero. One lock file per
digest makes concurrent pulls of the same image share a single download.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmlog import paths
from vmlog.errors import Cancelled, DownloadError, IntegrityError, InvalidInput
from vmlog.fsutil import atomic_write_text, fsync_dir
from vmlog.store._files import file_lock
from vmlog.store.images import ImageStore, StoredImage

CHUNK = 1 << 20  # 1 MiB reads: few syscalls, few Python-level iterations
FLUSH_EVERY = 64 << 20  # start writeback of what arrived so the final fsync has little left to do
BUFFERS = 6  # chunks in flight between the network reader and the hashing thread
DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 5
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
DIGEST_ALGOS = ("sha256", "sha512")
USER_AGENT = "vmlog-downloader/1"

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Digest:
    algo: str
    hex: str

    @classmethod
    def parse(cls, digest: tuple[str, str]) -> Digest:
        algo, value = digest[0].lower(), digest[1].strip().lower()
        if algo not in DIGEST_ALGOS:
            raise InvalidInput(f"unsupported digest algorithm {algo!r}", fix="use sha256 or sha512")
        length = hashlib.new(algo).digest_size * 2
        if len(value) != length or any(c not in "0123456789abcdef" for c in value):
            raise InvalidInput(f"malformed {algo} digest {value!r}", fix=f"give {length} hex digits")
        return cls(algo, value)

    @property
    def key(self) -> str:
        return f"{self.algo}-{self.hex}"


def check_url(url: str, *, insecure: bool = False) -> urllib.parse.SplitResult:
    """HTTPS only, except plain HTTP to this machine (tests, local mirrors) or with ``insecure``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return parts
    if parts.scheme == "http" and parts.hostname:
        if insecure or parts.hostname in LOCAL_HOSTS:
            return parts
        raise DownloadError(
            f"refusing plain HTTP download from {parts.hostname}: {url}",
            fix="use an https:// URL, or pass --insecure if you trust the network (the digest is still checked)",
        )
    raise DownloadError(f"unsupported URL {url!r}", fix="use an https:// URL")


class _Attempt(Exception):
    """One mirror failed in a way worth trying the next mirror for."""

    def __init__(self, message: str, *, integrity: bool = False) -> None:
        super().__init__(message)
        self.integrity = integrity


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


def fetch(
    urls: Sequence[str],
    store: ImageStore,
    *,
    name: str,
    version: str,
    format: str,
    digest: tuple[str, str],
    size: int | None = None,
    arch: str = "x86_64",
    insecure: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    downloads: Path | None = None,
) -> StoredImage:
    """Download an image from the first mirror that works, verify it, and add it to ``store``.

    Returns at once if the store already holds the image. ``timeout`` is how long the server may
    send nothing before the mirror counts as stalled. Raises ``DownloadError`` when every mirror
    failed, ``IntegrityError`` when the bytes did not match the digest or size, ``Cancelled`` when
    ``cancel`` was set (the partial file is kept for the next attempt).
    """
    want = Digest.parse(digest)
    if not urls:
        raise DownloadError(f"no URL to download {name}-{version} from", fix="check the catalog entry")
    for url in urls:
        check_url(url, insecure=insecure)
    found = _already_stored(store, want)
    if found is not None:
        return found
    downloads = Path(downloads) if downloads is not None else paths.home().downloads
    downloads.mkdir(parents=True, exist_ok=True)
    with _digest_lock(downloads / f"{want.key}.lock", cancel):
        found = _already_stored(store, want)  # a concurrent pull may have finished meanwhile
        if found is not None:
            return found
        partial = downloads / f"{want.key}.part"
        failures: list[str] = []
        integrity_failure = False
        for url in urls:
            _check_cancel(cancel)
            try:
                sha256 = _download(url, partial, want, size, insecure, progress, cancel, timeout)
            except _Attempt as exc:
                failures.append(f"{url}: {exc}")
                integrity_failure = integrity_failure or exc.integrity
                continue
            image = _move_into_store(store, partial, downloads, sha256, want, name, version, format, urls, arch)
            return image
        detail = "; ".join(failures)
        if integrity_failure:
            raise IntegrityError(
                f"{name}-{version}: no mirror delivered the expected {want.algo} {want.hex[:16]}...: {detail}",
                fix="the catalog's digest or the mirrors are wrong; report it to the catalog's maintainer",
            )
        raise DownloadError(
            f"could not download {name}-{version}: {detail}",
            fix="check your network connection and retry; the download resumes where it stopped",
        )


def _already_stored(store: ImageStore, want: Digest) -> StoredImage | None:
    if want.algo == "sha256":
        found = store.find(want.hex)
        if found is not None:
            return found
    alias = store.root / ".aliases" / want.key
    try:
        return store.find(alias.read_text().strip())
    except FileNotFoundError:
        return None


def record_alias(store: ImageStore, digest: tuple[str, str], sha256: str) -> None:
    """Remember that the download with ``digest`` became the store image ``sha256``.

    Used for sha512 catalog digests and for Vagrant boxes, whose disk is stored instead of the box.
    """
    want = Digest.parse(digest)
    aliases = store.root / ".aliases"
    aliases.mkdir(parents=True, exist_ok=True)
    atomic_write_text(aliases / want.key, sha256 + "\n")


def _move_into_store(
    store: ImageStore,
    partial: Path,
    downloads: Path,
    sha256: str,
    want: Digest,
    name: str,
    version: str,
    format: str,
    urls: Sequence[str],
    arch: str,
) -> StoredImage:
    image = store.adopt(partial, sha256=sha256, name=name, version=version, format=format, urls=urls, arch=arch)
    if want.algo != "sha256":
        aliases = store.root / ".aliases"
        aliases.mkdir(parents=True, exist_ok=True)
        atomic_write_text(aliases / want.key, sha256 + "\n")
    partial.unlink(missing_ok=True)
    return image


class _digest_lock:
    """Exclusive per-digest lock; waiting for it can be cancelled."""

    def __init__(self, path: Path, cancel: threading.Event | None) -> None:
        self.path = path
        self.cancel = cancel
        self._cm = None

    def __enter__(self) -> None:
        while True:
            cm = file_lock(self.path, blocking=False)
            if cm.__enter__():
                self._cm = cm
                return
            cm.__exit__(None, None, None)
            _check_cancel(self.cancel)
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        assert self._cm is not None
        self._cm.__exit__(*exc)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("download cancelled; the partial file is kept and the next pull resumes it")


def _open(url: str, offset: int, insecure: bool, timeout: float) -> tuple[http.client.HTTPResponse, str]:
    """GET ``url`` (following redirects under the same HTTPS policy), asking for bytes from ``offset``."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = check_url(url, insecure=insecure)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _Attempt(_describe_network_error(exc, timeout)) from exc
        if resp.status in (301, 302, 303, 307, 308):
            location = resp.getheader("Location")
            resp.close()
            conn.close()
            if not location:
                raise _Attempt(f"redirect ({resp.status}) without a Location")
            url = urllib.parse.urljoin(url, location)
            continue
        return resp, url
    raise _Attempt(f"more than {MAX_REDIRECTS} redirects")


def _describe_network_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"truncated: the connection closed {exc.expected} bytes before the end"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"stalled: no data for {timeout:g} s"
    return f"{type(exc).__name__}: {exc}"


def _content_range_start(value: str | None) -> tuple[int, int | None] | None:
    """Parse ``bytes START-END/TOTAL``; None if malformed."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start, _, _end = span.partition("-")
    try:
        return int(start), (int(total) if total.strip() != "*" else None)
    except ValueError:
        return None


def _download(
    url: str,
    partial: Path,
    want: Digest,
    size: int | None,
    insecure: bool,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
) -> str:
    """Fetch the missing part of ``partial`` from ``url``; return its sha256 once it matches ``want``."""
    offset = partial.stat().st_size if partial.exists() else 0
    if size is not None and offset > size:
        partial.unlink()
        offset = 0
    resp, final_url = _open(url, offset, insecure, timeout)
    try:
        if resp.status == 206 and offset:
            start = _content_range_start(resp.getheader("Content-Range"))
            if start is None or start[0] != offset:
                raise _Attempt(f"server answered a range other than the one asked for ({start})")
        elif resp.status == 200:
            offset = 0  # the server ignores Range: start again from the beginning
        elif resp.status == 416 and offset:
            partial.unlink()  # our partial file is not a prefix the server recognises
            resp.close()
            return _download(url, partial, want, size, insecure, progress, cancel, timeout)
        else:
            raise _Attempt(f"HTTP {resp.status} {resp.reason}")
        length = resp.getheader("Content-Length")
        expected_total = offset + int(length) if length and length.isdigit() else None
        if size is not None and expected_total is not None and expected_total != size:
            raise _Attempt(f"server announces {expected_total} bytes, the catalog says {size}", integrity=True)
        return _stream(resp, partial, offset, want, size or expected_total, progress, cancel, timeout)
    finally:
        resp.close()


def _stream(
    resp: http.client.HTTPResponse,
    partial: Path,
    offset: int,
    want: Digest,
    total: int | None,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
) -> str:
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
            _check_cancel(cancel)
            buf = hashers.buffer()
            try:
                n = resp.readinto(buf)
            except (OSError, http.client.HTTPException) as exc:
                hashers.free.put(buf)
                raise _Attempt(_describe_network_error(exc, timeout)) from exc
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
                raise _Attempt(f"server sent more than the {total} bytes expected", integrity=True)
            now = time.monotonic()
            if progress and now - last_report >= 0.1:
                progress(done, total)
                last_report = now
        if total is not None and done < total:
            raise _Attempt(f"truncated: got {done} of {total} bytes")
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
            raise _Attempt(f"{want.algo} mismatch: got {declared}, expected {want.hex}", integrity=True)
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
                raise _Attempt("the partial file shrank while resuming")
            hashers.feed(buf, n)
            remaining -= n


def fetch_small(url: str, *, insecure: bool = False, limit: int = 4 << 20, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """GET a small document (a catalog, a version file, a ``.sha256`` file) under the same URL policy.

    Refuses anything larger than ``limit`` bytes so a hostile server cannot exhaust memory.
    """
    try:
        resp, _ = _open(url, 0, insecure, timeout)
    except _Attempt as exc:
        raise DownloadError(f"could not fetch {url}: {exc}", fix="check the URL and your network") from exc
    try:
        if resp.status != 200:
            raise DownloadError(f"could not fetch {url}: HTTP {resp.status} {resp.reason}", fix="check the URL")
        try:
            data = resp.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"could not fetch {url}: {_describe_network_error(exc, timeout)}") from exc
        if len(data) > limit:
            raise DownloadError(f"{url} is larger than {limit} bytes; refused", fix="check the URL")
        return data
    finally:
        resp.close()
