"""Benchmark: vmlog's verified download against `curl -o FILE && sync`, both from one local HTTP server.

The server is nginx (Debian's `nginx-light`) when installed, else a threaded Python server that
answers with sendfile. Each run fetches the same incompressible file with curl (then `sync`, the
durability vmlog's fsync gives) and with vmlog (sha256 while streaming, fsync, moved into the image
store); the runs alternate so both see the same machine. Prints the best and median of each, the
ratio of rates, and the median of the ratios of each vmlog run to the curl run just before it (on a
shared, loaded machine the load drifts between runs; a pair sees the same load). The CPU seconds
say why the ratio drops on a busy machine: vmlog also hashes every byte, which costs CPU time that
curl does not spend. The target is >= 0.9 against `curl -o && sync`.

    python bench/bench_download.py [--size-mib 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmlog.appliances.download import fetch  # noqa: E402
from vmlog.store import ImageStore  # noqa: E402

NGINX_CONF = """
{user}
worker_processes 1;
error_log {root}/error.log;
pid {root}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}/www; }}
}}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def nginx(www: Path, work: Path) -> Iterator[str]:
    port = _free_port()
    root = work / "nginx"
    (root / "tmp").mkdir(parents=True)
    (root / "www").symlink_to(www)
    user = "user root;" if os.geteuid() == 0 else ""  # workers that can read what root wrote
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port, user=user))
    for path in (work, root, www):
        path.chmod(0o755)  # nginx's workers run as an unprivileged user
    proc = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root), "-g", "daemon off;"])
    try:
        deadline = time.monotonic() + 10
        probe = ["curl", "-so", "/dev/null", f"http://127.0.0.1:{port}/"]
        while subprocess.run(probe, check=False).returncode == 7:  # 7: connection refused
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {(root / 'error.log').read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def python_server(www: Path) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = www / self.path.lstrip("/")
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with open(path, "rb") as fh:
                self.connection.sendfile(fh)
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def _make_file(path: Path, mib: int) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(mib):
            block = os.urandom(1 << 20)
            fh.write(block)
            digest.update(block)
    return digest.hexdigest()


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _curl(url: str, out: Path, cpu: list[float] | None = None) -> float:
    used = _cpu(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", str(out), url], check=True)
    subprocess.run(["sync"], check=True)
    took = time.perf_counter() - start
    if cpu is not None:
        cpu.append(_cpu(resource.RUSAGE_CHILDREN) - used)
    out.unlink()
    return took


def _vmlog(url: str, work: Path, run: int, sha: str, size: int, cpu: list[float] | None = None) -> float:
    store = ImageStore(work / f"store{run}")
    used = _cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    image = fetch([url], store, name="bench", version="1", format="raw", digest=("sha256", sha), size=size,
                  downloads=work / "downloads")  # fmt: skip
    took = time.perf_counter() - start
    if cpu is not None:
        cpu.append(_cpu(resource.RUSAGE_SELF) - used)
    assert image.sha256 == sha
    shutil.rmtree(store.root)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to download (default: a temporary directory)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="vmlog-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        www = work / "www"
        www.mkdir()
        sha = _make_file(www / "image.raw", args.size_mib)
        (www / "image.raw").chmod(0o644)
        size = (www / "image.raw").stat().st_size
        server = nginx(www, work) if shutil.which("nginx") else python_server(www)
        with server as base:
            url = f"{base}/image.raw"
            kind = "nginx" if shutil.which("nginx") else "python sendfile server"
            curl_times, vmlog_times, curl_cpu, vmlog_cpu = [], [], [], []
            _curl(url, work / "warm.out")  # the file is in the page cache for every run
            for run in range(args.runs):
                curl_times.append(_curl(url, work / "curl.out", curl_cpu))
                vmlog_times.append(_vmlog(url, work, run, sha, size, vmlog_cpu))
    mib = size / (1 << 20)
    print(f"file: {mib:.0f} MiB from {kind} on 127.0.0.1, {args.runs} alternating runs")
    for label, times, cpu in (("curl -o && sync", curl_times, curl_cpu), ("vmlog fetch", vmlog_times, vmlog_cpu)):
        print(f"{label:<16}: best {mib / min(times):7.1f} MiB/s  median {mib / statistics.median(times):7.1f} MiB/s"
              f"  CPU {statistics.median(cpu):.2f} s")  # fmt: skip
    pairs = [curl / ours for curl, ours in zip(curl_times, vmlog_times, strict=True)]
    print(f"ratio vmlog/(curl -o && sync): best {min(curl_times) / min(vmlog_times):.2f}"
          f"  median {statistics.median(curl_times) / statistics.median(vmlog_times):.2f}"
          f"  median of pairs {statistics.median(pairs):.2f} (target >= 0.90)")
    print("pairs: " + " ".join(f"{ratio:.2f}" for ratio in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
