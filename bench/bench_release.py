"""Benchmark the release mounts: cold and warm read throughput vs local disk, and catalog load time.

Builds a CernVM-FS-format repository with the test builder, serves it over HTTP on 127.0.0.1,
mounts a release with FUSE and reads every file:

* cold: empty object cache, every file fetched over HTTP, verified, decompressed;
* warm: a fresh mount over the filled cache (no HTTP);
* local: the same files read from a plain directory on the same disk.

Then times loading a catalog of ``--entries`` rows (default 100,000): verify manifest, fetch and
inflate the catalog, open it, list the directory and look up every entry.

Usage: python bench/bench_release.py [--files 64] [--size-kib 1024] [--entries 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "vmlog" / "releases"))

from release_repos import CvmfsRepoBuilder, ServedDirectory  # noqa: E402

from vmlog.releases import CvmfsSource, mount_release, umount  # noqa: E402


def read_tree(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    total += len(chunk)
    return total


def timed(label: str, fn) -> float:
    start = time.perf_counter()
    nbytes = fn()
    seconds = time.perf_counter() - start
    rate = f"{nbytes / seconds / 1e6:8.1f} MB/s" if nbytes else ""
    print(f"{label:<44} {seconds:8.3f} s {rate}")
    return seconds


def bench_reads(work: Path, files: int, size: int) -> None:
    builder = CvmfsRepoBuilder(work / "www", name="bench.example.org")
    local = work / "local"
    for index in range(files):
        data = os.urandom(size // 2) + bytes(size - size // 2)  # half random, half compressible
        builder.add_file(f"sw/r1/data/file{index:04d}.bin", data, chunk_size=4 << 20)
        (local / f"file{index:04d}.bin").parent.mkdir(parents=True, exist_ok=True)
        (local / f"file{index:04d}.bin").write_bytes(data)
    builder.publish(1)
    server = ServedDirectory(work / "www")
    os.environ["VMLOG_HOME"] = str(work / "home")
    source = CvmfsSource(
        f"{server.url}/cvmfs/{builder.name}", builder.master_public_pem(), pattern="sw/{release}", proxy=""
    )
    print(f"-- {files} files x {size >> 10} KiB")
    try:
        mount_release(source, "r1", at=work / "mnt", cache_dir=work / "cache")
        timed("cold read through FUSE (HTTP, verify, inflate)", lambda: read_tree(work / "mnt"))
        umount("r1")
        mount_release(source, "r1", at=work / "mnt", cache_dir=work / "cache")
        timed("warm read through FUSE (cache)", lambda: read_tree(work / "mnt"))
        umount("r1")
        timed("local disk read (page cache likely warm)", lambda: read_tree(local))
    finally:
        server.stop()


def bench_catalog(work: Path, entries: int) -> None:
    builder = CvmfsRepoBuilder(work / "www-cat", name="catalog.example.org")
    for index in range(entries):
        builder.add_file(f"sw/big/f{index:06d}", b"%d\n" % (index % 97))  # few distinct objects, many rows
    start = time.perf_counter()
    builder.publish(1)
    print(f"-- catalog of {entries} entries (built in {time.perf_counter() - start:.1f} s)")
    server = ServedDirectory(work / "www-cat")
    source = CvmfsSource(
        f"{server.url}/cvmfs/{builder.name}", builder.master_public_pem(), pattern="sw/{release}", proxy=""
    )
    cache = work / "cat-cache"
    try:
        holder: dict = {}

        def load() -> int:
            release = source.resolve("big", cache)
            holder["tree"] = source.open_tree(release, cache, 1 << 34)
            return 0

        timed("verify + fetch + inflate + open (cold)", load)
        tree = holder["tree"]
        names: list[str] = []
        timed("list the directory", lambda: names.extend(e.name for e in tree.listdir("")) or 0)
        assert len(names) == entries
        timed("look up every entry", lambda: sum(tree.lookup("/" + n) is not None for n in names) * 0)
        tree.close()
        timed(
            "verify + open again (catalog cached)",
            lambda: source.open_tree(source.resolve("big", cache), cache, 1 << 34).close() or 0,
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vmlog-bench-release-") as tmp:
        work = Path(tmp)
        bench_reads(work, args.files, args.size_kib << 10)
        bench_catalog(work, args.entries)


if __name__ == "__main__":
    main()
