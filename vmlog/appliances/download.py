"""Verified, resumable image downloads into the image store (standard library HTTP only).

A download streams into ``<downloads>/<algo>-<hex>.part`` while the declared digest (and the
store's sha256) are computed on the same bytes; only a complete, matching file is moved into the
store. The partial file survives a cancel, Ctrl-C, a stall or a dropped connection and is resumed
with ``Range:``; a server that ignores ``Range`` makes us start again from zero. A partial file that
is already complete is checked without asking the server, and one whose resumed bytes do not match is
fetched again from zero, so a failed pull never blocks the next one. One lock file per digest makes
concurrent pulls of the same image share a single download. Before a download of known size, the
free space of the disk is checked.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from vmlog import paths
from vmlog.appliances.digest import Digest
from vmlog.appliances.http_get import (
    DEFAULT_TIMEOUT,
    MirrorFailed,
    TransferLimits,
    check_url,
    content_range_start,
    open_url,
)
from vmlog.appliances.partial_file import Progress, check_cancel, hash_file, stream_into
from vmlog.errors import DownloadError, IntegrityError
from vmlog.fsutil import atomic_write_text
from vmlog.store._files import file_lock
from vmlog.store.images import ImageStore, StoredImage


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
    limits: TransferLimits | None = None,
) -> StoredImage:
    """Download an image from the first mirror that works, verify it, and add it to ``store``.

    Returns at once if the store already holds the image. ``timeout`` is how long the server may
    send nothing before the mirror counts as stalled; ``limits`` bound the whole transfer (deadline,
    minimum rate, size when none is announced). Raises ``DownloadError`` when every mirror failed or
    the disk has too little space for a download of known size, ``IntegrityError`` when the bytes
    did not match the digest or size, ``Cancelled`` when ``cancel`` was set (the partial file is
    kept for the next attempt).
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
        sha256 = _complete_partial(partial, want, size, cancel)
        if sha256 is not None:
            return _move_into_store(store, partial, sha256, want, name, version, format, urls, arch)
        check_free_space(downloads, partial, size, f"{name}-{version}")
        failures: list[str] = []
        integrity_failure = False
        for url in urls:
            check_cancel(cancel)
            try:
                sha256 = _download_or_restart(url, partial, want, size, insecure, progress, cancel, timeout, limits)
            except MirrorFailed as exc:
                failures.append(f"{url}: {exc}")
                integrity_failure = integrity_failure or exc.integrity
                continue
            return _move_into_store(store, partial, sha256, want, name, version, format, urls, arch)
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


def check_free_space(downloads: Path, partial: Path, size: int | None, what: str) -> None:
    """Refuse a download of known size that the disk cannot hold (with what the partial file already has)."""
    if not size:
        return
    have = partial.stat().st_size if partial.exists() else 0
    needed = max(size - have, 0)
    free = shutil.disk_usage(downloads).free
    if needed > free:
        raise DownloadError(
            f"not enough free space to download {what}: it needs {_gb(needed)}, {downloads} has {_gb(free)} free",
            fix=f"free at least {_gb(needed - free)} on the file system of {downloads} (`df -h {downloads}`),"
            " then pull again",
        )


def _gb(num: int) -> str:
    return f"{num / 1e9:.2f} GB" if num >= 10_000_000 else f"{num / 1e6:.2f} MB"


def _complete_partial(partial: Path, want: Digest, size: int | None, cancel: threading.Event | None) -> str | None:
    """The sha256 of a partial file left complete by an earlier pull, if its bytes are right; else remove it."""
    if not size or not partial.exists() or partial.stat().st_size != size:
        return None
    sha256 = hash_file(partial, want, cancel)
    if sha256 is None:
        partial.unlink(missing_ok=True)  # complete but wrong: start again rather than ask for bytes past the end
    return sha256


def _move_into_store(
    store: ImageStore,
    partial: Path,
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
            check_cancel(self.cancel)
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        assert self._cm is not None
        self._cm.__exit__(*exc)


def _download_or_restart(
    url: str,
    partial: Path,
    want: Digest,
    size: int | None,
    insecure: bool,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
    limits: TransferLimits | None,
) -> str:
    """:func:`_download`, and once more from zero when a resumed download does not match its digest.

    The kept prefix may be what was wrong (a mirror that served other bytes, a disk that lost some),
    so one mismatch after a resume must not fail the pull.
    """
    resumed = partial.exists() and partial.stat().st_size > 0
    try:
        return _download(url, partial, want, size, insecure, progress, cancel, timeout, limits)
    except MirrorFailed as exc:
        if not (resumed and exc.wrong_bytes):
            raise
        partial.unlink(missing_ok=True)
        return _download(url, partial, want, size, insecure, progress, cancel, timeout, limits)


def _download(
    url: str,
    partial: Path,
    want: Digest,
    size: int | None,
    insecure: bool,
    progress: Progress | None,
    cancel: threading.Event | None,
    timeout: float,
    limits: TransferLimits | None,
) -> str:
    """Fetch the missing part of ``partial`` from ``url``; return its sha256 once it matches ``want``."""
    offset = partial.stat().st_size if partial.exists() else 0
    if size is not None and offset > size:
        partial.unlink()
        offset = 0
    resp, final_url = open_url(url, offset, insecure, timeout)
    try:
        if resp.status == 206 and offset:
            start = content_range_start(resp.getheader("Content-Range"))
            if start is None or start[0] != offset:
                raise MirrorFailed(f"server answered a range other than the one asked for ({start})")
        elif resp.status == 200:
            offset = 0  # the server ignores Range: start again from the beginning
        elif resp.status == 416 and offset:
            partial.unlink()  # our partial file is not a prefix the server recognises
            resp.close()
            return _download(url, partial, want, size, insecure, progress, cancel, timeout, limits)
        else:
            raise MirrorFailed(f"HTTP {resp.status} {resp.reason}")
        length = resp.getheader("Content-Length")
        expected_total = offset + int(length) if length and length.isdigit() else None
        if size is not None and expected_total is not None and expected_total != size:
            raise MirrorFailed(f"server announces {expected_total} bytes, the catalog says {size}", integrity=True)
        return stream_into(resp, partial, offset, want, size or expected_total, progress, cancel, timeout, limits)
    finally:
        resp.close()
