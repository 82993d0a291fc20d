"""A remote catalog's last good copy: used while its server is down, refreshed conditionally (304) when it is up."""

from __future__ import annotations

import email.utils
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vmlog.appliances.catalog import Catalogs
from vmlog.appliances.catalog_cache import CatalogCache
from vmlog.errors import DownloadError

MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)


def _catalog(version: str) -> bytes:
    image = {"urls": ["https://example.org/lab.qcow2"], "digest": {"sha256": "0" * 64}}
    appliance = {"name": "lab-vm", "title": "Lab VM", "versions": [{"version": version, "images": {"qcow2": image}}]}
    return json.dumps({"vmlog_catalog": 1, "appliances": [appliance]}).encode()


class CatalogServer:
    """A catalog on a real HTTP server that validates ``If-None-Match``/``If-Modified-Since``; can be stopped
    and started again on the same port, as a catalog server that goes down and comes back."""

    def __init__(self) -> None:
        self.body = _catalog("1.0")
        self.etag = '"v1"'
        self.seen: list[tuple[int, dict[str, str]]] = []  # (status, the validators the client sent)
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/catalog.json"

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                sent = {k: v for k, v in self.headers.items() if k.lower().startswith("if-")}
                fresh = self.headers.get("If-None-Match") == server.etag or (
                    "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == MODIFIED)
                status = 304 if fresh else 200
                server.seen.append((status, sent))
                self.send_response(status)
                self.send_header("ETag", server.etag)
                self.send_header("Last-Modified", MODIFIED)
                self.send_header("Content-Length", "0" if fresh else str(len(server.body)))
                self.end_headers()
                if not fresh:
                    self.wfile.write(server.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd = None


@pytest.fixture
def catalog_server() -> Iterator[CatalogServer]:
    server = CatalogServer()
    server.start()
    yield server
    if server.httpd is not None:
        server.stop()


def test_a_catalog_server_that_goes_down_leaves_its_appliances_listed(catalog_server, tmp_path: Path) -> None:
    catalogs = Catalogs(tmp_path / "config", cache_dir=tmp_path / "cache")
    catalogs.add(catalog_server.url, name="lab")
    assert "lab-vm" in [a.name for a in catalogs.appliances()] and not catalogs.problems

    catalog_server.stop()
    listed = {a.name: a for a in catalogs.appliances()}
    assert listed["lab-vm"].versions[0].version == "1.0"
    (note,) = catalogs.notes
    assert note.startswith("catalog lab: could not fetch") and "using the cached copy from 20" in note
    assert catalogs.problems == [note]  # the CLI warns with it on stderr
    assert catalogs.get("lab-vm").name == "lab-vm"  # a pull or setup still finds it

    catalog_server.body, catalog_server.etag = _catalog("2.0"), '"v2"'
    catalog_server.start()
    assert [v.version for v in catalogs.get("lab-vm").versions] == ["2.0"] and not catalogs.notes


def test_an_unchanged_catalog_is_confirmed_by_304_without_a_body(catalog_server, tmp_path: Path) -> None:
    cache = CatalogCache(tmp_path / "cache")
    first = cache.load(catalog_server.url, parse=json.loads)
    assert catalog_server.seen == [(200, {})] and not first.cached
    again = cache.load(catalog_server.url, parse=json.loads)
    status, sent = catalog_server.seen[-1]
    assert status == 304 and sent == {"If-None-Match": '"v1"', "If-Modified-Since": MODIFIED}
    assert again.document == first.document and again.fetched >= first.fetched and not again.cached
    record = cache.read(catalog_server.url)
    assert record is not None and record["etag"] == '"v1"' and record["last_modified"] == MODIFIED


def test_without_a_kept_copy_an_unreachable_catalog_is_an_error(catalog_server, tmp_path: Path) -> None:
    url = catalog_server.url
    catalog_server.stop()
    with pytest.raises(DownloadError):
        CatalogCache(tmp_path / "cache").load(url, parse=json.loads)
    catalogs = Catalogs(tmp_path / "config", cache_dir=tmp_path / "cache")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "catalogs.json").write_text(json.dumps({"catalogs": [{"name": "lab", "location": url}]}))
    assert "lab-vm" not in [a.name for a in catalogs.appliances()]
    assert catalogs.problems[0].startswith("catalog lab: could not fetch") and not catalogs.notes


def test_a_new_document_that_does_not_parse_keeps_the_last_good_copy(catalog_server, tmp_path: Path) -> None:
    catalogs = Catalogs(tmp_path / "config", cache_dir=tmp_path / "cache")
    catalogs.add(catalog_server.url, name="lab")
    catalog_server.body, catalog_server.etag = b"<html>maintenance</html>", '"broken"'
    assert "lab-vm" not in [a.name for a in catalogs.appliances()]
    assert "not valid JSON" in catalogs.problems[0]
    record = CatalogCache(tmp_path / "cache").read(catalog_server.url)
    assert record is not None and record["etag"] == '"v1"'


def test_vml_appliance_list_warns_on_stderr_and_lists_the_cached_appliance(
    catalog_server, vmlog_home: Path
) -> None:
    env_run = [sys.executable, "-m", "vmlog.cli.main"]
    added = subprocess.run([*env_run, "catalog", "add", catalog_server.url, "--name", "lab"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert added.returncode == 0, added.stderr
    catalog_server.stop()
    listed = subprocess.run([*env_run, "appliance", "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "lab-vm" in listed.stdout
    assert "using the cached copy from" in listed.stderr and "lab-vm" not in listed.stderr
