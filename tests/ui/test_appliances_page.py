"""The Appliances page keeps a catalog's appliances while its server is down and says the copy's date."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from vmlog.app import appliances


class CatalogServer:
    """A directory with one catalog on a real HTTP server, stopped and started again on the same port."""

    def __init__(self, root: Path) -> None:
        image = {"urls": ["https://example.org/lab.qcow2"], "digest": {"sha256": "0" * 64}}
        doc = {"vmlog_catalog": 1, "appliances": [
            {"name": "lab-vm", "title": "Lab VM", "versions": [{"version": "1.0", "images": {"qcow2": image}}]}]}
        root.mkdir()
        (root / "catalog.json").write_text(json.dumps(doc))
        self.root = root
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/catalog.json"

    def start(self) -> None:
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), functools.partial(Quiet, directory=str(self.root)))
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_catalog_whose_server_is_down_shows_its_cached_copy_with_a_note(qtbot, window, vmlog_home: Path) -> None:
    server = CatalogServer(vmlog_home.parent / "served")
    server.start()
    try:
        appliances.add_catalog(server.url, name="lab")
    finally:
        server.stop()
    controller = window.appliances_controller
    page = window.appliances_page
    controller.refresh()
    qtbot.waitUntil(lambda: "lab-vm" in page.tiles and page.catalog_note.isVisibleTo(page), timeout=20_000)
    note = page.catalog_note.text()
    assert "catalog lab" in note and "using the cached copy from 20" in note

    server.start()  # back: the note goes
    try:
        controller.refresh()
        qtbot.waitUntil(lambda: not page.catalog_note.isVisibleTo(page), timeout=20_000)
    finally:
        server.stop()
    assert "lab-vm" in page.tiles
