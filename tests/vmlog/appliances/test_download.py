"""Downloads against a real HTTP server on 127.0.0.1: resume, mirrors, stalls, corruption, locking."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from vmlog.appliances.download import check_url, fetch
from vmlog.errors import Cancelled, DownloadError, IntegrityError
from vmlog.store import ImageStore

SIZE = 6 * 1024 * 1024


@pytest.fixture
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


def _sha(data: bytes, algo: str = "sha256") -> tuple[str, str]:
    return algo, hashlib.new(algo, data).hexdigest()


def _fetch(urls, store, downloads, data, **kw):
    kw.setdefault("digest", _sha(data))
    kw.setdefault("size", len(data))
    return fetch(urls, store, name="demo", version="1.0", format="raw", downloads=downloads, **kw)


def _store_is_empty(store: ImageStore) -> bool:
    return store.list() == [] and not [
        p for p in (store.root.iterdir() if store.root.exists() else []) if not p.name.startswith(".")
    ]


def test_fetch_verifies_and_stores(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img.qcow2", payload)
    seen = []
    image = _fetch([url], store, downloads, payload, progress=lambda done, total: seen.append((done, total)))
    assert image.path.read_bytes() == payload
    assert image.sha256 == hashlib.sha256(payload).hexdigest()
    assert image.urls == (url,)
    assert seen[-1] == (SIZE, SIZE)
    assert not list(downloads.glob("*.part"))
    # a second pull finds the image in the store and sends no request
    assert _fetch([url], store, downloads, payload) == image
    assert len(http_server.log) == 1


def test_plain_http_refused_except_localhost() -> None:
    with pytest.raises(DownloadError, match="plain HTTP"):
        check_url("http://mirror.example.org/image.qcow2")
    with pytest.raises(DownloadError, match="unsupported URL"):
        check_url("ftp://mirror.example.org/image.qcow2")
    with pytest.raises(DownloadError, match="unsupported URL"):
        check_url("file:///etc/passwd")
    check_url("https://mirror.example.org/image.qcow2")
    check_url("http://mirror.example.org/image.qcow2", insecure=True)
    for host in ("127.0.0.1", "localhost", "[::1]"):
        check_url(f"http://{host}:8000/image.qcow2")


def test_fetch_refuses_insecure_mirror_before_any_request(http_server, store, downloads, payload) -> None:
    good = http_server.add("/img", payload)
    with pytest.raises(DownloadError, match="plain HTTP"):
        _fetch([good, "http://mirror.example.org/img"], store, downloads, payload)
    assert http_server.log == []


def test_cancel_then_resume_fetches_only_missing_bytes(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img", payload, delay_per_chunk=0.01)
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done >= 2 * 1024 * 1024:
            cancel.set()

    with pytest.raises(Cancelled):
        _fetch([url], store, downloads, payload, progress=progress, cancel=cancel)
    part = downloads / f"sha256-{hashlib.sha256(payload).hexdigest()}.part"
    kept = part.stat().st_size
    assert 0 < kept < SIZE
    assert part.read_bytes() == payload[:kept]
    assert _store_is_empty(store)

    http_server.resources["/img"].delay_per_chunk = 0
    image = _fetch([url], store, downloads, payload)
    assert image.path.read_bytes() == payload
    second = http_server.log[-1]
    assert second.range == f"bytes={kept}-" and second.status == 206
    assert second.start == kept and second.sent == SIZE - kept
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img", payload, ignore_range=True)
    downloads.mkdir()
    part = downloads / f"sha256-{hashlib.sha256(payload).hexdigest()}.part"
    part.write_bytes(b"\xff" * 1000)  # a stale partial whose bytes are not even a prefix
    image = _fetch([url], store, downloads, payload)
    assert image.path.read_bytes() == payload
    (request,) = http_server.log
    assert request.range == "bytes=1000-" and request.status == 200 and request.sent == SIZE


def test_mirrors_tried_in_order(http_server, store, downloads, payload) -> None:
    missing = http_server.add("/gone", b"", status=404)
    broken = http_server.add("/broken", payload, status=500)
    good = http_server.add("/good", payload)
    image = _fetch([missing, broken, good], store, downloads, payload)
    assert [r.path for r in http_server.log] == ["/gone", "/broken", "/good"]
    assert image.urls == (missing, broken, good)


def test_404_everywhere_is_a_download_error(http_server, store, downloads, payload) -> None:
    url = http_server.add("/gone", b"", status=404)
    with pytest.raises(DownloadError, match="HTTP 404"):
        _fetch([url], store, downloads, payload)
    assert _store_is_empty(store)


def test_stalled_server_is_an_error_and_resume_continues(http_server, store, downloads, payload) -> None:
    stalled = http_server.add("/stall", payload, stall_after=3 * 1024 * 1024 + 5)
    with pytest.raises(DownloadError, match="stalled"):
        _fetch([stalled], store, downloads, payload, timeout=1.0)
    assert _store_is_empty(store)
    part = downloads / f"sha256-{hashlib.sha256(payload).hexdigest()}.part"
    kept = part.stat().st_size
    assert kept > 0 and part.read_bytes() == payload[:kept]
    good = http_server.add("/good", payload)
    image = _fetch([good], store, downloads, payload)
    assert image.path.read_bytes() == payload
    assert http_server.requests("/good")[0].range == f"bytes={kept}-"


def test_truncated_response_is_an_error_keeping_prefix(http_server, store, downloads, payload) -> None:
    url = http_server.add("/trunc", payload, truncate_at=SIZE // 3)
    with pytest.raises(DownloadError, match="truncated"):
        _fetch([url], store, downloads, payload)
    assert _store_is_empty(store)
    part = downloads / f"sha256-{hashlib.sha256(payload).hexdigest()}.part"
    assert part.read_bytes() == payload[: part.stat().st_size]


def test_wrong_bytes_are_an_integrity_error(http_server, store, downloads, payload) -> None:
    evil = bytearray(payload)
    evil[SIZE // 2] ^= 0xFF
    url = http_server.add("/evil", bytes(evil))
    with pytest.raises(IntegrityError, match="mismatch"):
        _fetch([url], store, downloads, payload)
    assert _store_is_empty(store)
    assert not list(downloads.glob("*.part"))


def test_wrong_bytes_on_first_mirror_fall_back_to_next(http_server, store, downloads, payload) -> None:
    evil = http_server.add("/evil", os.urandom(SIZE))
    good = http_server.add("/good", payload)
    image = _fetch([evil, good], store, downloads, payload)
    assert image.path.read_bytes() == payload
    assert http_server.requests("/good")[0].range is None  # the bad bytes were not resumed


def test_size_mismatch_is_an_integrity_error(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img", payload)
    with pytest.raises(IntegrityError, match="catalog says"):
        _fetch([url], store, downloads, payload, size=SIZE - 1)
    assert _store_is_empty(store)


def test_sha512_digest_and_later_lookup(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img", payload)
    image = _fetch([url], store, downloads, payload, digest=_sha(payload, "sha512"))
    assert image.sha256 == hashlib.sha256(payload).hexdigest()
    assert _fetch([url], store, downloads, payload, digest=_sha(payload, "sha512")) == image
    assert len(http_server.log) == 1


def test_redirect_followed(http_server, store, downloads, payload) -> None:
    target = http_server.add("/real", payload)
    start = http_server.add("/start", b"", redirect_to=target)
    image = _fetch([start], store, downloads, payload)
    assert image.path.read_bytes() == payload
    assert [r.path for r in http_server.log] == ["/start", "/real"]


def test_concurrent_pulls_share_one_download(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img", payload, delay_per_chunk=0.005)
    results: list = []
    errors: list = []

    def pull() -> None:
        try:
            results.append(_fetch([url], store, downloads, payload))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 3 and len({r.path for r in results}) == 1
    assert len(http_server.log) == 1 and http_server.log[0].sent == SIZE


def test_keyboard_interrupt_keeps_partial_and_store_clean(http_server, store, downloads, payload) -> None:
    url = http_server.add("/img", payload, delay_per_chunk=0.01)

    def progress(done: int, total: int | None) -> None:
        if done >= 1024 * 1024:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fetch([url], store, downloads, payload, progress=progress)
    assert _store_is_empty(store)
    part = downloads / f"sha256-{hashlib.sha256(payload).hexdigest()}.part"
    kept = part.stat().st_size
    assert kept > 0
    http_server.resources["/img"].delay_per_chunk = 0
    image = _fetch([url], store, downloads, payload)  # the lock was released, the partial resumed
    assert image.path.read_bytes() == payload
    assert http_server.log[-1].range == f"bytes={kept}-"
