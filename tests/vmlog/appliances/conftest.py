"""A real, configurable HTTP server on 127.0.0.1 for download and catalog tests.

Each served path has a behaviour: honour or ignore ``Range``, stall after some bytes, close the
connection early, answer 404, serve other bytes, go slowly. Every request is logged with the range
it asked for and the bytes actually sent, so tests can assert what went over the wire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Resource:
    data: bytes
    status: int = 200
    ignore_range: bool = False
    stall_after: int | None = None  # send this many bytes, then nothing
    truncate_at: int | None = None  # send this many bytes, then close (with the full length announced)
    delay_per_chunk: float = 0.0
    chunk: int = 64 * 1024
    redirect_to: str | None = None


@dataclass
class Request:
    path: str
    range: str | None
    status: int
    start: int = 0
    sent: int = 0


@dataclass
class FileServer:
    resources: dict[str, Resource] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, data: bytes, **behaviour) -> str:
        self.resources[path] = Resource(data, **behaviour)
        return self.url(path)

    def requests(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            res = server.resources.get(self.path)
            range_header = self.headers.get("Range")
            if res is None or res.status == 404:
                server.log.append(Request(self.path, range_header, 404))
                self._plain(404, b"not found\n")
                return
            if res.redirect_to:
                server.log.append(Request(self.path, range_header, 302))
                self.send_response(302)
                self.send_header("Location", res.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if res.status != 200:
                server.log.append(Request(self.path, range_header, res.status))
                self._plain(res.status, b"error\n")
                return
            data = res.data
            start = 0
            status = 200
            if range_header and not res.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    server.log.append(Request(self.path, range_header, 416))
                    self._plain(416, b"")
                    return
                status = 206
            entry = Request(self.path, range_header, status, start)
            server.log.append(entry)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "none" if res.ignore_range else "bytes")
            self.end_headers()
            pos = start
            limit = len(data)
            if res.truncate_at is not None:
                limit = min(limit, res.truncate_at)
            if res.stall_after is not None:
                limit = min(limit, res.stall_after)
            try:
                while pos < limit:
                    end = min(pos + res.chunk, limit)
                    self.wfile.write(data[pos:end])
                    self.wfile.flush()
                    entry.sent += end - pos
                    pos = end
                    if res.delay_per_chunk:
                        time.sleep(res.delay_per_chunk)
                if res.stall_after is not None:
                    server.stop.wait(60)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _plain(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
