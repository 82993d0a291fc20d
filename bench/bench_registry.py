"""Benchmark: registry push and pull throughput of vmlog against ``curl`` moving the same blobs, in one run.

A real registry on 127.0.0.1 (Debian's ``docker-registry``, TLS and htpasswd, as the tests start it),
mostly incompressible data, every figure a ratio against curl on the same machine at the same moment:

* ``blob``: one random blob of ``--blob-mib`` MiB, uploaded (POST + one streamed PUT) and downloaded by
  vmlog's client and by ``curl -T`` / ``curl -o``;
* ``state``: ``push_state`` of a state whose delta is ``--change-mib`` MiB of random 1 MiB runs on a
  random base of ``--base-mib`` MiB (the export, then the upload of the base and the layers), and
  ``pull_state`` of it into a fresh home (download, verification, import), against curl uploading and
  downloading exactly the blobs the push sent.

    python bench/bench_registry.py [--blob-mib 256] [--base-mib 256] [--change-mib 64]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "vmlog" / "registry"))

from registry_helpers import PASSWORD, REGISTRY, USER, config_file, context_at, free_port, make_tls  # noqa: E402

from vmlog.app import projects, states  # noqa: E402
from vmlog.app import registry as app_registry  # noqa: E402
from vmlog.registry.auth import Credentials  # noqa: E402
from vmlog.registry.client import RegistryClient  # noqa: E402

MB = 1e6


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def random_file(path: Path, mib: int) -> str:
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(mib):
            piece = os.urandom(1 << 20)
            sha.update(piece)
            fh.write(piece)
    return "sha256:" + sha.hexdigest()


class Curl:
    """The same registry through ``curl``: the distribution API by hand, with the same TLS and credentials."""

    def __init__(self, host: str, ca: Path) -> None:
        self.host, self.base = host, ["curl", "-sSf", "--cacert", str(ca), "-u", f"{USER}:{PASSWORD}"]

    def upload(self, repo: str, digest: str, path: Path) -> None:
        head = subprocess.run([*self.base, "-D", "-", "-o", "/dev/null", "-X", "POST",
                               f"https://{self.host}/v2/{repo}/blobs/uploads/"],
                              check=True, capture_output=True, text=True).stdout
        location = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                        if line.lower().startswith("location:"))
        if location.startswith("/"):
            location = f"https://{self.host}{location}"
        sep = "&" if "?" in location else "?"
        subprocess.run([*self.base, "-o", "/dev/null", "-T", str(path), "-H", "Content-Type: application/octet-stream",
                        f"{location}{sep}digest={digest}"], check=True)

    def download(self, repo: str, digest: str, out: Path) -> None:
        subprocess.run([*self.base, "-L", "-o", str(out), f"https://{self.host}/v2/{repo}/blobs/{digest}"], check=True)


def start_registry(folder: Path) -> tuple[subprocess.Popen, str, Path]:
    ca, cert, key = make_tls(folder)
    (folder / "htpasswd").write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                                                    capture_output=True, text=True).stdout)
    port = free_port()
    log = open(folder / "registry.log", "wb")  # noqa: SIM115 - lives as long as the registry
    process = subprocess.Popen([str(REGISTRY), "serve", str(config_file(folder, port, cert, key, folder / "htpasswd"))],
                               stdout=log, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    for _ in range(150):
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca),
                               f"https://{host}/v2/"], capture_output=True, text=True)
        if done.stdout == "401":
            break
        time.sleep(0.2)
    return process, host, ca


def bench_blob(d: Path, host: str, ca: Path, mib: int) -> dict[str, float]:
    blob = d / "blob"
    digest = random_file(blob, mib)
    curl = Curl(host, ca)
    creds = Credentials(USER, PASSWORD, "bench")
    with RegistryClient(host, credentials=creds, ca_file=ca) as client:
        def vml_up() -> None:
            with open(blob, "rb") as fh:
                client.upload_blob("bench/vml", digest, fh, blob.stat().st_size)

        def vml_down() -> None:
            with open(d / "vml.out", "wb") as fh:
                client.download_blob("bench/vml", digest, fh, size=blob.stat().st_size)

        _, t_vml_up = timed(vml_up)
        _, t_vml_down = timed(vml_down)
    _, t_curl_up = timed(lambda: curl.upload("bench/curl", digest, blob))
    _, t_curl_down = timed(lambda: curl.download("bench/curl", digest, d / "curl.out"))
    size = blob.stat().st_size
    return {"size": size, "vml_up": t_vml_up, "curl_up": t_curl_up, "vml_down": t_vml_down, "curl_down": t_curl_down}


def bench_state(d: Path, host: str, ca: Path, base_mib: int, change_mib: int) -> dict[str, float]:
    base = d / "base.raw"
    random_file(base, base_mib)
    pieces = []
    for i in range(change_mib):  # one random source file per MiB: qemu-io copies each from its start
        pieces.append(d / f"change-{i}")
        random_file(pieces[-1], 1)
    a = context_at(d / "home-a")
    image = a.images.add_file(base, name="benchbase", version="1", format="raw")
    projects.new_project("bench", image.sha256, ctx=a)
    files = a.projects.get("bench")
    live = files.layers.path(files.load().live["system"])
    stride = max(1, base_mib // change_mib)  # 1 MiB runs spread over the disk
    script = [f"write -s {piece} {(i * stride) << 20} {1 << 20}" for i, piece in enumerate(pieces)]
    subprocess.run(["qemu-io", "-f", "qcow2", str(live)], input="\n".join(script) + "\nquit\n", text=True,
                   check=True, capture_output=True)
    states.save_state("bench", "s1", ctx=a)
    login = app_registry.Login(USER, PASSWORD, ca_file=ca)
    pushed, t_push = timed(lambda: app_registry.push_state(f"{host}/bench/state:s1", "bench", "s1", login=login,
                                                           ctx=a))
    b = context_at(d / "home-b")
    pulled, t_pull = timed(lambda: app_registry.pull_state(f"{host}/bench/state:s1", trust=True, login=login, ctx=b))
    # curl: the same blobs (the base and the bundle's members) to another repository and back
    with RegistryClient(host, credentials=Credentials(USER, PASSWORD, "bench"), ca_file=ca) as client:
        blobs = []
        for digest in pushed.uploaded:
            out = d / f"blob-{digest[7:19]}"
            with open(out, "wb") as fh:
                reply = client.request("GET", f"/v2/bench/state/blobs/{digest}", "repository:bench/state:pull")
                fh.write(reply.content)
            blobs.append((digest, out))
    curl = Curl(host, ca)
    _, t_curl_up = timed(lambda: [curl.upload("bench/curl-state", dg, p) for dg, p in blobs])
    _, t_curl_down = timed(lambda: [curl.download("bench/curl-state", dg, d / "down") for dg, _ in blobs])
    return {"bytes": pushed.bytes_uploaded, "push": t_push, "pull": t_pull, "curl_up": t_curl_up,
            "curl_down": t_curl_down, "pulled_bytes": pulled.bytes_downloaded}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blob-mib", type=int, default=256)
    ap.add_argument("--base-mib", type=int, default=256)
    ap.add_argument("--change-mib", type=int, default=64)
    args = ap.parse_args()
    if REGISTRY is None:
        sys.exit("needs Debian's docker-registry (apt-get install docker-registry apache2-utils)")
    with tempfile.TemporaryDirectory(prefix="vmlog-bench-registry-") as tmp:
        d = Path(tmp)
        (d / "registry").mkdir()
        process, host, ca = start_registry(d / "registry")
        try:
            blob = bench_blob(d, host, ca, args.blob_mib)
            state = bench_state(d, host, ca, args.base_mib, args.change_mib)
        finally:
            process.terminate()
            process.wait(10)
    size = blob["size"] / MB
    print(f"blob of {size:.0f} MB (random)     vmlog        curl      vmlog/curl (time)")
    print(f"  upload            {size / blob['vml_up']:8.1f} MB/s {size / blob['curl_up']:8.1f} MB/s"
          f"   {blob['vml_up'] / blob['curl_up']:.2f}")
    print(f"  download          {size / blob['vml_down']:8.1f} MB/s {size / blob['curl_down']:8.1f} MB/s"
          f"   {blob['vml_down'] / blob['curl_down']:.2f}")
    sent = state["bytes"] / MB
    print(f"state: {args.base_mib} MiB random base + {args.change_mib} MiB random 1 MiB runs, {sent:.0f} MB sent")
    print(f"  push (export + upload)    {state['push']:6.2f} s   curl upload, same blobs {state['curl_up']:6.2f} s"
          f"   {state['push'] / state['curl_up']:.2f}")
    print(f"  pull (download + verify + import) {state['pull']:6.2f} s   curl download {state['curl_down']:6.2f} s"
          f"   {state['pull'] / state['curl_down']:.2f}")


if __name__ == "__main__":
    main()
