"""Downloads are bounded (deadline, minimum rate, size when none is announced, free space); leftovers never block."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vmlog.appliances.download import fetch
from vmlog.appliances.http_get import TransferLimits
from vmlog.cli.errors_out import NO_SPACE_EXIT_CODE
from vmlog.errors import DownloadError, IntegrityError
from vmlog.store import ImageStore

ROOT = Path(__file__).resolve().parents[3]
SIZE = 2 * 1024 * 1024


def _fetch(urls, tmp_path: Path, data: bytes, **kw):
    kw.setdefault("digest", ("sha256", hashlib.sha256(data).hexdigest()))
    kw.setdefault("size", len(data))
    return fetch(urls, ImageStore(tmp_path / "images"), name="demo", version="1", format="raw",
                 downloads=tmp_path / "downloads", **kw)  # fmt: skip


def _part(tmp_path: Path, data: bytes) -> Path:
    return tmp_path / "downloads" / f"sha256-{hashlib.sha256(data).hexdigest()}.part"


def test_a_dripping_server_fails_on_the_minimum_rate_and_the_partial_is_kept(http_server, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/drip", data, chunk=1, delay_per_chunk=0.2)  # 5 bytes/s, never silent for long
    limits = TransferLimits(min_rate=1000, rate_window=1.0)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="too slow") as failed:
        _fetch([url], tmp_path, data, limits=limits)
    assert time.monotonic() - start < 10
    assert "resumes" in (failed.value.fix or "")
    kept = _part(tmp_path, data).read_bytes()
    assert 0 < len(kept) < 100 and kept == data[: len(kept)]


def test_the_overall_deadline_ends_a_slow_but_steady_download(http_server, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/slow", data, chunk=16 * 1024, delay_per_chunk=0.05)  # 320 KiB/s: over the rate, slow
    with pytest.raises(DownloadError, match="deadline"):
        _fetch([url], tmp_path, data, limits=TransferLimits(deadline=1.0, min_rate=1.0))
    kept = _part(tmp_path, data).read_bytes()
    assert 0 < len(kept) < SIZE and kept == data[: len(kept)]


def test_a_server_that_keeps_the_connection_open_after_the_body_is_done(http_server, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/keepalive", data, stall_after=SIZE)  # all bytes, then an idle open connection
    start = time.monotonic()
    assert _fetch([url], tmp_path, data, timeout=5.0).path.read_bytes() == data
    assert time.monotonic() - start < 4


@pytest.fixture
def unsized_server() -> Iterator[tuple[str, bytes]]:
    """A server that announces no Content-Length and sends until it closes the connection."""
    data = os.urandom(3 * 1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/x", data
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_body_with_no_size_anywhere_is_bounded(unsized_server, tmp_path: Path, monkeypatch) -> None:
    url, data = unsized_server
    monkeypatch.setattr("vmlog.appliances.partial_file.SPACE_CHECK_EVERY", 1 << 20)
    with pytest.raises(IntegrityError, match="announced no size"):
        _fetch([url], tmp_path, data, size=None, limits=TransferLimits(max_unknown_size=1 << 20))
    assert _fetch([url], tmp_path, data, size=None).path.read_bytes() == data  # under the bound it is fine


def test_a_complete_partial_with_wrong_bytes_does_not_block_the_next_pull(http_server, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/img", data)
    part = _part(tmp_path, data)
    part.parent.mkdir(parents=True)
    part.write_bytes(os.urandom(SIZE))  # a failed pull's leftover: the right size, the wrong bytes
    assert _fetch([url], tmp_path, data).path.read_bytes() == data
    assert [r.range for r in http_server.log] == [None]
    assert not part.exists()


def test_a_complete_partial_with_the_right_bytes_is_stored_without_a_request(http_server, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/img", data)
    part = _part(tmp_path, data)
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    assert _fetch([url], tmp_path, data).path.read_bytes() == data
    assert http_server.log == []


def test_a_resumed_partial_whose_prefix_is_wrong_is_fetched_again_from_zero(http_server, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = http_server.add("/img", data)
    part = _part(tmp_path, data)
    part.parent.mkdir(parents=True)
    part.write_bytes(os.urandom(SIZE // 2))
    assert _fetch([url], tmp_path, data).path.read_bytes() == data
    assert [r.range for r in http_server.log] == [f"bytes={SIZE // 2}-", None]


def test_free_space_is_checked_before_a_download_of_known_size(http_server, tmp_path: Path) -> None:
    data = os.urandom(1024)
    url = http_server.add("/img", data)
    with pytest.raises(DownloadError, match="not enough free space") as refused:
        _fetch([url], tmp_path, data, size=1 << 50)
    assert "df -h" in (refused.value.fix or "")
    assert http_server.log == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _catalog(path: Path, url: str, data: bytes, size: int | None) -> Path:
    image = {"urls": [url], "digest": {"sha256": hashlib.sha256(data).hexdigest()}, **({"size": size} if size else {})}
    entry = {"name": "demo", "title": "Demo", "description": "d", "versions": [{"version": "1", "images": {"raw": image}}]}  # noqa: E501
    path.write_text(json.dumps({"vmlog_catalog": 1, "appliances": [entry]}))
    return path


@pytest.mark.parametrize("announced", [False, True])
def test_a_full_disk_during_a_pull_is_one_line_with_its_fix(http_server, small_disk: Path, tmp_path: Path,
                                                            announced: bool) -> None:  # fmt: skip
    data = os.urandom(8 * 1024 * 1024)
    url = http_server.add("/img", data)
    env = {**os.environ, "VMLOG_HOME": str(small_disk / "home"), "PYTHONPATH": str(ROOT)}
    catalog = _catalog(tmp_path / "catalog.json", url, data, len(data) if announced else None)
    vml = [sys.executable, "-m", "vmlog.cli"]
    subprocess.run([*vml, "catalog", "add", str(catalog)], env=env, check=True, capture_output=True, timeout=120)
    proc = subprocess.run([*vml, "appliance", "pull", "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("  fix: ") and "df -h" in lines[1], proc.stderr
    if announced:  # refused before a byte is written
        assert proc.returncode == DownloadError.exit_code and "not enough free space" in lines[0]
        assert len(http_server.log) == 0
    else:
        assert proc.returncode == NO_SPACE_EXIT_CODE and "no space left" in lines[0], proc.stderr
        as_json = subprocess.run([*vml, "appliance", "pull", "demo", "--json"], env=env, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
        error = json.loads(as_json.stdout)["error"]
        assert error["exit_code"] == as_json.returncode == NO_SPACE_EXIT_CODE and "df -h" in error["fix"]
