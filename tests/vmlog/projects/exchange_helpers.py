"""Two vmlog homes on one machine and a real HTTP server on 127.0.0.1 serving base images."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vmlog.logbook import Logbook
from vmlog.paths import VmlogHome
from vmlog.projects import service
from vmlog.projects.store import ProjectStore
from vmlog.store.images import ImageStore


def home_at(root: Path) -> VmlogHome:
    """The home ``VMLOG_HOME=root`` would give (same layout as :func:`vmlog.paths.home`)."""
    root = root.resolve()
    return VmlogHome(config=root / "config", data=root / "data", cache=root / "cache", runtime=root / "run")


def context_at(root: Path) -> service.Context:
    """A service context on the home at ``root``, without touching ``$VMLOG_HOME``."""
    h = home_at(root).ensure()
    images = ImageStore(h.images)
    return service.Context(
        h, images, ProjectStore(h.projects, lambda sha: images.get(sha).path), Logbook(h.logbook)
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1; yields the base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def vml(home: Path, *args: str, stdin: int | None = subprocess.DEVNULL, timeout: float = 600, **env: str):
    """Run the real ``vml`` entry point in a child process for one home (no TTY: stdin is /dev/null)."""
    environment = {**os.environ, "VMLOG_HOME": str(home), "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args],
        env=environment,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
