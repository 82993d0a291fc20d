"""Plain-HTTP bodies go socket -> pipe -> file in the kernel, hashed from the page cache: same bytes, same checks."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from vmlog.appliances import http_get
from vmlog.appliances.download import fetch
from vmlog.errors import Cancelled
from vmlog.store import ImageStore

SIZE = 5 * 1024 * 1024 + 12345  # not a multiple of a page: the last range and a resume start mid-page


@pytest.fixture
def spliced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes each splice step took (the path is in use when this is not empty)."""
    steps: list[int] = []
    real = http_get.BodyReader.splice

    def counting(self, pipe_in, size, sink, check):  # type: ignore[no-untyped-def]
        got, stopped = real(self, pipe_in, size, sink, check)
        steps.append(got)
        return got, stopped

    monkeypatch.setattr(http_get.BodyReader, "splice", counting)
    return steps


def _fetch(url: str, tmp_path: Path, data: bytes, **kw):  # type: ignore[no-untyped-def]
    digest = ("sha256", hashlib.sha256(data).hexdigest())
    return fetch([url], ImageStore(tmp_path / "images"), name="demo", version="1", format="raw", digest=digest,
                 size=len(data), downloads=tmp_path / "dl", **kw)  # fmt: skip


def test_a_plain_http_body_is_spliced_and_hashed_right(http_server, tmp_path: Path, spliced: list[int]) -> None:
    data = os.urandom(SIZE)
    image = _fetch(http_server.add("/img", data), tmp_path, data)
    assert image.path.read_bytes() == data and image.sha256 == hashlib.sha256(data).hexdigest()
    assert sum(spliced) > SIZE // 2  # all but what came with the headers and the first buffer


def test_a_resumed_spliced_download_hashes_the_prefix_and_the_rest(
    http_server, tmp_path: Path, spliced: list[int]
) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/img", data, delay_per_chunk=0.005, chunk=40_000)
    cancel = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done >= 2 * 1024 * 1024 + 777:
            cancel.set()

    with pytest.raises(Cancelled):
        _fetch(url, tmp_path, data, progress=progress, cancel=cancel)
    (part,) = (tmp_path / "dl").glob("*.part")
    kept = part.stat().st_size
    assert 0 < kept < SIZE and part.read_bytes() == data[:kept]
    http_server.resources["/img"].delay_per_chunk = 0
    spliced.clear()
    image = _fetch(url, tmp_path, data)
    assert image.path.read_bytes() == data and spliced
    assert http_server.log[-1].range == f"bytes={kept}-"


def test_without_splice_the_body_goes_through_buffers(
    http_server, tmp_path: Path, spliced: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "splice")
    data = os.urandom(SIZE)
    assert _fetch(http_server.add("/img", data), tmp_path, data).path.read_bytes() == data
    assert spliced == []
