"""Benchmark: vmlog's verified download vs curl, both fetching one large file from a localhost server.

Prints each tool's throughput and the ratio (vmlog / curl); the target is >= 0.9. vmlog's time
includes hashing (sha256 while streaming) and the move into the image store; curl only writes.

    python bench/bench_download.py [--size-mib 400] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmlog.appliances.download import fetch  # noqa: E402
from vmlog.store import ImageStore  # noqa: E402


def _server(path: Path) -> ThreadingHTTPServer:
    size = path.stat().st_size

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            with open(path, "rb") as fh:
                self.connection.sendfile(fh)  # zero-copy, so the server is not the bottleneck
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="vmlog-bench-") as tmp:
        work = Path(tmp)
        src = work / "image.raw"
        block = os.urandom(1 << 20)
        digest = hashlib.sha256()
        with open(src, "wb") as fh:
            for i in range(args.size_mib):
                chunk = block[i % 251 :] + block[: i % 251]  # distinct blocks, cheap to make
                fh.write(chunk)
                digest.update(chunk)
        sha = digest.hexdigest()
        size = src.stat().st_size
        httpd = _server(src)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/image.raw"

        curl_times, curl_durable_times, vmlog_times = [], [], []
        for run in range(args.runs):
            out = work / "curl.out"
            start = time.perf_counter()
            subprocess.run(["curl", "-s", "-o", str(out), url], check=True)
            curl_times.append(time.perf_counter() - start)
            fd = os.open(out, os.O_RDONLY)
            os.fsync(fd)  # what vmlog pays for a crash-safe store
            os.close(fd)
            curl_durable_times.append(time.perf_counter() - start)
            out.unlink()

            store = ImageStore(work / f"store{run}")
            start = time.perf_counter()
            image = fetch(
                [url], store, name="bench", version="1", format="raw", digest=("sha256", sha), size=size,
                downloads=work / "downloads",
            )  # fmt: skip
            vmlog_times.append(time.perf_counter() - start)
            assert image.sha256 == sha
            shutil.rmtree(store.root)
        httpd.shutdown()

    mib = size / (1 << 20)
    curl_rate = mib / min(curl_times)
    durable_rate = mib / min(curl_durable_times)
    vmlog_rate = mib / min(vmlog_times)
    print(f"file: {mib:.0f} MiB, best of {args.runs} runs")
    print(f"curl        : {curl_rate:8.1f} MiB/s (page cache only)")
    print(f"curl + fsync: {durable_rate:8.1f} MiB/s")
    print(f"vmlog       : {vmlog_rate:8.1f} MiB/s (sha256 while streaming, fsync, into the store)")
    print(f"ratio vmlog/curl: {vmlog_rate / curl_rate:.2f} (target >= 0.90)")
    print(f"ratio vmlog/(curl + fsync): {vmlog_rate / durable_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
