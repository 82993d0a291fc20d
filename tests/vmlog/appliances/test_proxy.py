"""Appliance and catalog downloads go through the proxy http_proxy names, unless no_proxy exempts the host."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vmlog.appliances.download import fetch
from vmlog.appliances.http_get import fetch_small, proxy_for
from vmlog.errors import DownloadError
from vmlog.store import ImageStore


@dataclass
class Proxy:
    url: str = ""
    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (target, Range, Proxy-Auth)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A real forward proxy (absolute-URI GET, as a lab's proxy answers plain-HTTP requests)."""
    state = Proxy()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.seen.append((self.path, self.headers.get("Range"), self.headers.get("Proxy-Authorization")))
            target = urllib.parse.urlsplit(self.path)
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "user-agent", "accept-encoding")}
            upstream.request("GET", target.path or "/", headers=headers)
            resp = upstream.getresponse()
            body = resp.read()
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://user:s%40cret@127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_an_appliance_download_goes_through_the_proxy_and_resumes_through_it(
    http_server, proxy: Proxy, clean_proxy_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    url = http_server.add("/img", data)
    clean_proxy_env.setenv("http_proxy", proxy.url)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    sha = hashlib.sha256(data).hexdigest()
    (downloads / f"sha256-{sha}.part").write_bytes(data[:1000])
    image = fetch([url], ImageStore(tmp_path / "images"), name="d", version="1", format="raw",
                  digest=("sha256", sha), size=len(data), downloads=downloads)  # fmt: skip
    assert image.path.read_bytes() == data
    assert [(target, rng) for target, rng, _ in proxy.seen] == [(url, "bytes=1000-")]
    assert proxy.seen[0][2] == "Basic dXNlcjpzQGNyZXQ="  # user:s@cret, as the proxy URL gave them
    assert [r.range for r in http_server.log] == ["bytes=1000-"]  # the server saw the proxy's request only


def test_a_catalog_is_fetched_through_the_proxy(
    http_server, proxy: Proxy, clean_proxy_env: pytest.MonkeyPatch
) -> None:
    url = http_server.add("/catalog.json", b'{"vmlog_catalog": 1, "appliances": []}')
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    assert fetch_small(url) == b'{"vmlog_catalog": 1, "appliances": []}'
    assert [target for target, _, _ in proxy.seen] == [url]


def test_no_proxy_exempts_a_host(http_server, proxy: Proxy, clean_proxy_env: pytest.MonkeyPatch) -> None:
    url = http_server.add("/catalog.json", b"{}")
    clean_proxy_env.setenv("http_proxy", proxy.url)
    clean_proxy_env.setenv("no_proxy", "example.org,127.0.0.1")
    assert fetch_small(url) == b"{}"
    assert proxy.seen == [] and len(http_server.log) == 1


def test_https_goes_through_a_tunnel_and_a_bad_proxy_setting_is_refused(clean_proxy_env: pytest.MonkeyPatch) -> None:
    parts = urllib.parse.urlsplit("https://mirror.example.org/a.qcow2")
    assert proxy_for(parts) is None
    clean_proxy_env.setenv("https_proxy", "proxy.lab.example:3128")
    found = proxy_for(parts)
    assert found is not None and (found.hostname, found.port) == ("proxy.lab.example", 3128)
    clean_proxy_env.setenv("https_proxy", "socks5://proxy.lab.example:1080")
    with pytest.raises(DownloadError, match="only http:// proxies"):
        proxy_for(parts)
