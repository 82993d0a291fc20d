"""Fixtures of the hostile-input corpus: a host canary file, a local HTTP server, and a home with a catalog."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory and the http://127.0.0.1 URL that serves it (plain HTTP to this machine is allowed)."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host file hostile inputs name; nothing may open it."""
    path = tmp_path / "host-secret"
    path.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n" * 100)
    return path
