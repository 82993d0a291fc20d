"""GUI test setup: Qt warnings fail the test, a fresh vmlog home, a window with the real controllers."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# the offscreen platform's own notice, not something the window did
OFFSCREEN_NOISE = "This plugin does not support"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture
def window(qtbot, vmlog_home: Path):
    """The real main window, wired to the real services, on an empty vmlog home."""
    from ui.app import build_window, make_application

    make_application([])
    win = build_window()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.runner.cancel_all()
    win.runner.wait(60_000)


@dataclass
class SlowServer:
    url: str
    payload: bytes
    sha256: str
    served: threading.Event
    release: threading.Event


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    """An HTTP server on 127.0.0.1 that dribbles a 4 MiB image out in 64 KiB pieces until released."""
    payload = bytes(range(256)) * (16 * 1024)
    served = threading.Event()
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            served.set()
            try:
                for offset in range(start, len(payload), 65536):
                    self.wfile.write(payload[offset : offset + 65536])
                    self.wfile.flush()
                    if not release.is_set():
                        time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SlowServer(
            f"http://127.0.0.1:{server.server_address[1]}/image.raw",
            payload,
            hashlib.sha256(payload).hexdigest(),
            served,
            release,
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()
