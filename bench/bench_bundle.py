"""Benchmark: state bundle size against the physical floor, and export/import time against the raw tools.

Realistic data, one run, every figure a ratio:

* the base is incompressible (random bytes), as real installed systems mostly are to a compressor
  that sees them in 4 KiB pieces;
* ``scattered``: 4,000 incompressible 4 KiB guest writes at random places;
* ``text``: one compressible 32 MiB text file written in one place;
* ``mixed``: both (the case of issue 18);
* ``copied``: a 32 MiB file of the base copied elsewhere on the disk (the guest's ``cp``).

For each case it prints the floor (``zstd -19`` of exactly the changed bytes), the bundle,
``qemu-img convert -c -B`` of the same layer, and the export and import times against the raw
tools doing the same work with the same compressor family: ``qemu-img convert -B`` followed by
``zstd -3 -T0`` (and, for import, ``zstd -d`` of that file).

    python bench/bench_bundle.py [--base-mib 1024] [--writes 4000] [--cases scattered,text,mixed,copied] [--rounds 5]
    python bench/bench_bundle.py --large [--large-change-gib 4] [--large-disk-gib 20]

``--large`` (or ``VMLOG_BENCH_LARGE=1``) runs the scale case instead: a 4 GiB incompressible change on
a 20 GiB sparse disk, exported and imported each in a process of its own, printing the peak memory
of each (VmHWM) and the peak extra disk space used during each (free space and the bytes allocated
in the bench's directory, sampled), with the times against the raw tools. It needs about 4x the
change in free space and minutes; tests never run it.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hypervisors import qemu_img
from vmlog.bundles import BaseImageRef, BundleReader, BundleWriter, LocalReference
from vmlog.bundles.nbd import NbdImage

BLOCK = 4096
TEXT_BYTES = 32 << 20
CASES = ("scattered", "text", "mixed", "copied")


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its finished children: independent of other load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_cpu(fn):  # type: ignore[no-untyped-def]
    before = cpu_seconds()
    result, wall = timed(fn)
    return result, wall, cpu_seconds() - before


def make_base(path: Path, size: int, rng: random.Random) -> str:
    """An incompressible raw base of ``size`` bytes; returns its sha256."""
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(0, size, 16 << 20):
            chunk = rng.randbytes(min(16 << 20, size - fh.tell()))
            sha.update(chunk)
            fh.write(chunk)
    return sha.hexdigest()


def make_text(rng: random.Random, size: int) -> bytes:
    """English-like text: words from a 4,000-word vocabulary, lines of about 70 characters."""
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12, 9, 8, 8, 7, 7, 6, 6, 6, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    vocab = ["".join(rng.choices(letters, weights, k=rng.randint(2, 10))) for _ in range(4000)]
    out = bytearray()
    while len(out) < size:
        words = rng.choices(vocab, k=12)
        out += (" ".join(words) + ".\n").encode()
    return bytes(out[:size])


@dataclass
class Change:
    """A guest's writes: (offset, bytes) in any order; ``changed`` is exactly those bytes, offset order."""

    writes: list[tuple[int, bytes]]

    @property
    def changed(self) -> bytes:
        return b"".join(data for _off, data in sorted(self.writes))


def make_change(case: str, base: Path, size: int, writes: int, rng: random.Random) -> Change:
    out: list[tuple[int, bytes]] = []
    blocks = size // BLOCK
    text_at = rng.randrange(blocks // 4, blocks // 2) * BLOCK
    text_blocks = set(range(text_at // BLOCK, (text_at + TEXT_BYTES) // BLOCK))
    if case in ("scattered", "mixed"):
        chosen: set[int] = set()
        while len(chosen) < writes:
            b = rng.randrange(blocks)
            if b not in text_blocks:
                chosen.add(b)
        out += [(b * BLOCK, rng.randbytes(BLOCK)) for b in sorted(chosen)]
    if case in ("text", "mixed"):
        out.append((text_at, make_text(rng, TEXT_BYTES)))
    if case == "copied":
        src = rng.randrange(0, blocks // 4) * BLOCK
        dst = rng.randrange(blocks // 2, blocks - TEXT_BYTES // BLOCK) * BLOCK + BLOCK  # not cluster-aligned
        with open(base, "rb") as fh:
            fh.seek(src)
            out.append((dst, fh.read(TEXT_BYTES)))
    return Change(out)


def apply_change(top: Path, change: Change) -> None:
    with NbdImage(top, "qcow2", writable=True) as img:
        for off, data in change.writes:
            img.write(off, data)
        img.flush()


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def writer_options(cache: Path) -> dict[str, object]:
    """Options the writer of this tree knows (the bench runs against older writers too)."""
    params = inspect.signature(BundleWriter.__init__).parameters
    return {"block_index_dir": cache} if "block_index_dir" in params else {}


def build_index(base: Path, sha: str, cache: Path) -> float | None:
    """Time the once-per-base block index (None with a writer that has none); exports then reuse it."""
    try:
        from vmlog.bundles.block_index import base_index
    except ImportError:
        return None
    return timed(lambda: base_index(base, "raw", sha, cache))[1]


def bench_case(case: str, d: Path, base: Path, sha: str, args: argparse.Namespace, rng: random.Random) -> dict:
    w = d / case
    w.mkdir()
    size = base.stat().st_size
    top = qemu_img.create_overlay(w / "top.qcow2", base, "raw")
    change = make_change(case, base, size, args.writes, rng)
    apply_change(top, change)
    changed = change.changed
    (w / "changed.bin").write_bytes(changed)
    run(["zstd", "-q", "-19", "-T0", str(w / "changed.bin"), "-o", str(w / "changed.zst")])
    floor = (w / "changed.zst").stat().st_size
    del changed

    ref = BaseImageRef(base, "raw", sha, "bench", "1", size)
    writer = BundleWriter(ref, state={"id": "bench"}, vm_spec={}, **writer_options(d / "cache"))
    writer.add_disk("system", top)

    def export() -> object:
        (w / "state.vmlstate").unlink(missing_ok=True)
        return writer.write(w / "state.vmlstate")

    def raw_export() -> None:
        for leftover in (w / "raw.qcow2", w / "raw.qcow2.zst"):
            leftover.unlink(missing_ok=True)
        run(["qemu-img", "convert", "-O", "qcow2", "-B", str(base), "-F", "raw", str(top), str(w / "raw.qcow2")])
        run(["zstd", "-q", "-3", "-T0", str(w / "raw.qcow2"), "-o", str(w / "raw.qcow2.zst")])

    # paired rounds, export and raw tools alternating, so that both see the same load; medians reported
    rounds = []  # (export wall, export CPU, raw wall, raw CPU) of each round
    for _ in range(args.rounds):
        summary, wall, cpu = timed_cpu(export)
        _, raw_wall, raw_cpu = timed_cpu(raw_export)
        rounds.append((wall, cpu, raw_wall, raw_cpu))
    t_export, c_export, t_raw_export, c_raw_export = (statistics.median(column) for column in zip(*rounds, strict=True))
    spread = [wall / raw_wall for wall, _cpu, raw_wall, _raw_cpu in rounds]
    raw_size = (w / "raw.qcow2.zst").stat().st_size
    (w / "raw.qcow2").unlink()
    _, t_raw_import = timed(lambda: run(["zstd", "-q", "-d", str(w / "raw.qcow2.zst"), "-o", str(w / "raw.qcow2")]))
    run(["qemu-img", "convert", "-c", "-O", "qcow2", "-B", str(base), "-F", "raw", str(top), str(w / "c.qcow2")])
    convert_c = (w / "c.qcow2").stat().st_size

    recv = d / f"{case}-recv"
    recv.mkdir()
    base_copy = Path(shutil.copy(base, recv / "base.raw"))
    mat, t_import = timed(
        lambda: BundleReader(summary.path).materialise(recv / "st", base=LocalReference(base_copy, "raw", sha))
    )
    same = qemu_img.compare(mat.disks["system"], "qcow2", top, "qcow2")
    shutil.rmtree(recv)
    shutil.rmtree(w)
    return {
        "case": case,
        "changed": len(change.changed),
        "floor": floor,
        "bundle": summary.size,
        "convert_c": convert_c,
        "raw_zstd": raw_size,
        "t_export": t_export,
        "t_raw_export": t_raw_export,
        "c_export": c_export,
        "c_raw_export": c_raw_export,
        "spread": (min(spread), max(spread)),
        "t_import": t_import,
        "t_raw_import": t_raw_import,
        "same": same,
    }


def report(rows: list[dict], base_mib: int, t_index: float | None) -> None:
    mb = 1e6
    print(f"base {base_mib} MiB incompressible; sizes in MB, times in s; ratios against the floor / the raw tools")
    if t_index is not None:
        print(f"base block index, built once per base and cached: {t_index:.2f} s")
    print(
        f"{'case':10} {'changed':>8} {'floor':>8} {'bundle':>8} {'x floor':>8} {'convert-c':>9} {'x floor':>8}"
        f" {'export':>7} {'raw':>6} {'x raw':>6} {'import':>7} {'raw':>6} {'x raw':>6} same"
    )
    for r in rows:
        print(
            f"{r['case']:10} {r['changed'] / mb:8.1f} {r['floor'] / mb:8.2f} {r['bundle'] / mb:8.2f}"
            f" {r['bundle'] / r['floor']:8.2f} {r['convert_c'] / mb:9.2f} {r['convert_c'] / r['floor']:8.2f}"
            f" {r['t_export']:7.2f} {r['t_raw_export']:6.2f} {r['t_export'] / r['t_raw_export']:6.2f}"
            f" {r['t_import']:7.2f} {r['t_raw_import']:6.2f} {r['t_import'] / r['t_raw_import']:6.2f} {r['same']}"
        )
    print("raw export = qemu-img convert -B + zstd -3 -T0; raw import = zstd -d of that file")
    print("export times are medians of paired rounds; wall ratio of each round, lowest to highest:")
    for r in rows:
        low, high = r["spread"]
        print(f"  {r['case']:10} {low:5.2f} - {high:5.2f}")
    print("export CPU seconds (all threads and child processes), unaffected by other load on the machine:")
    for r in rows:
        print(
            f"  {r['case']:10} bundle {r['c_export']:6.2f}  raw tools {r['c_raw_export']:6.2f}"
            f"  x raw {r['c_export'] / r['c_raw_export']:5.2f}"
        )


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def allocated_bytes(path: Path) -> int:
    """Bytes allocated on disk by the files under ``path`` (sparse parts not counted)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:  # renamed or removed while walking
                pass
    return total


class DiskWatch:
    """Samples free space on a file system while a step runs: the peak extra space it used.

    Free space counts every writer on a shared machine; the bytes allocated under ``path`` (the
    bench's own directory, where the bundle and the imported overlay are written) count only this
    step's files, so ``peak_in_dir`` is the exact figure for "how many copies were on disk at once"
    (a writer that keeps work files elsewhere, in ``TMPDIR``, shows only in the free space).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start_free = self._free()
        self.min_free = self.start_free
        self.start_dir = self.max_dir = allocated_bytes(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.min_free = min(self.min_free, self._free())
            self.max_dir = max(self.max_dir, allocated_bytes(self.path))

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.min_free = min(self.min_free, self._free())
        self.end_free = self._free()

    @property
    def peak_extra(self) -> int:
        return self.start_free - self.min_free

    @property
    def kept(self) -> int:
        return self.start_free - self.end_free

    @property
    def peak_in_dir(self) -> int:
        return self.max_dir - self.start_dir


def child_main(step: str, spec: dict) -> None:
    """One export or import in this (fresh) process; prints its time and peak memory as JSON."""
    base = Path(spec["base"])
    start = time.perf_counter()
    if step == "export":
        ref = BaseImageRef(base, "raw", spec["sha"], "bench", "1", base.stat().st_size)
        writer = BundleWriter(ref, state={"id": "bench"}, vm_spec={}, **writer_options(Path(spec["cache"])))
        writer.add_disk("system", Path(spec["top"]))
        writer.write(Path(spec["bundle"]))
    else:
        BundleReader(Path(spec["bundle"])).materialise(
            Path(spec["dest"]), base=LocalReference(base, "raw", spec["sha"])
        )
    wall = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mib": peak_rss_mib(), "child_rss_mib": children}))


def in_child(step: str, spec: dict, watch_dir: Path) -> tuple[dict, DiskWatch]:
    with DiskWatch(watch_dir) as watch:
        out = subprocess.run(
            [sys.executable, __file__, "--child", step, json.dumps(spec)],
            check=True, capture_output=True, text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1]), watch


def make_large(d: Path, disk_gib: int, change_gib: int) -> tuple[Path, str, Path]:
    """A sparse raw base of ``disk_gib`` GiB with 1 GiB of random data in 64 MiB pieces, and a top holding
    ``change_gib`` GiB of random data in 16 MiB writes spread over the disk."""
    size = disk_gib << 30
    base = d / "base.raw"
    with open(base, "wb") as fh:
        fh.truncate(size)
        for i in range(16):
            fh.seek(i * (size // 16))
            fh.write(os.urandom(64 << 20))
    sha = hashlib.sha256()
    with open(base, "rb") as fh:
        while chunk := fh.read(16 << 20):
            sha.update(chunk)
    top = qemu_img.create_overlay(d / "top.qcow2", base, "raw")
    piece = 16 << 20
    pieces = (change_gib << 30) // piece
    stride = size // pieces // piece * piece
    with NbdImage(top, "qcow2", writable=True) as img:
        for i in range(pieces):
            img.write(i * stride, os.urandom(piece))
        img.flush()
    return base, sha.hexdigest(), top


def bench_large(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bundle-large-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        d = Path(tmp)
        base, sha, top = make_large(d, args.large_disk_gib, args.large_change_gib)
        spec = {"base": str(base), "sha": sha, "top": str(top), "cache": str(d / "cache"),
                "bundle": str(d / "state.vmlstate"), "dest": str(d / "recv")}
        t_index = build_index(base, sha, d / "cache")
        exp, exp_disk = in_child("export", spec, d)
        bundle_size = Path(spec["bundle"]).stat().st_size

        def raw_export() -> None:
            run(["qemu-img", "convert", "-O", "qcow2", "-B", str(base), "-F", "raw", str(top), str(d / "raw.qcow2")])
            run(["zstd", "-q", "-3", "-T0", "--rm", str(d / "raw.qcow2"), "-o", str(d / "raw.qcow2.zst")])

        _, t_raw_export = timed(raw_export)
        _, t_raw_import = timed(lambda: run(["zstd", "-q", "-d", str(d / "raw.qcow2.zst"), "-o", str(d / "raw.qcow2")]))
        (d / "raw.qcow2").unlink()
        (d / "raw.qcow2.zst").unlink()
        imp, imp_disk = in_child("import", spec, d)
        same = qemu_img.compare(d / "recv" / "system.qcow2", "qcow2", top, "qcow2") if args.large_compare else None
    rows = [("export", exp, t_raw_export, exp_disk), ("import", imp, t_raw_import, imp_disk)]
    report_large(args, bundle_size, t_index, rows)
    print(f"imported disk identical: {same}")


def report_large(args: argparse.Namespace, bundle_size: int, t_index: float | None, rows: list) -> None:
    gib = 1 << 30
    print(f"large: {args.large_change_gib} GiB incompressible change on a {args.large_disk_gib} GiB sparse disk;"
          f" bundle {bundle_size / gib:.2f} GiB; base block index built in {t_index or 0:.1f} s")
    print(f"{'step':7} {'time':>7} {'raw':>7} {'x raw':>6} {'peak RSS':>9} {'children':>9}"
          f" {'peak extra disk':>16} {'kept':>9} {'peak in dir':>12} {'x bundle':>8}")
    for name, r, raw, disk in rows:
        print(f"{name:7} {r['wall']:7.1f} {raw:7.1f} {r['wall'] / raw:6.2f} {r['rss_mib']:5.0f} MiB"
              f" {r['child_rss_mib']:5.0f} MiB {disk.peak_extra / gib:12.2f} GiB {disk.kept / gib:5.2f} GiB"
              f" {disk.peak_in_dir / gib:8.2f} GiB {disk.peak_in_dir / bundle_size:8.2f}")
    print("raw export = qemu-img convert -B + zstd -3 -T0; raw import = zstd -d of that file;"
          " children = qemu-img/qemu-nbd peak; peak extra disk and kept: free space of the file system (other"
          " writers count too); peak in dir: bytes allocated in the bench's directory; x bundle: that over the bundle's"
          " size (1.00: one compressed copy at the peak)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], json.loads(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-mib", type=int, default=1024)
    ap.add_argument("--writes", type=int, default=4000, help="scattered incompressible 4 KiB guest writes")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--rounds", type=int, default=5, help="paired export / raw-tools runs per case (medians shown)")
    ap.add_argument("--large", action="store_true", default=os.environ.get("VMLOG_BENCH_LARGE") == "1")
    ap.add_argument("--large-disk-gib", type=int, default=20)
    ap.add_argument("--large-change-gib", type=int, default=4)
    ap.add_argument("--large-compare", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.large:
        bench_large(args)
        return
    rng = random.Random(18)
    with tempfile.TemporaryDirectory(prefix="bench-bundle-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        d = Path(tmp)
        base = d / "base.raw"
        sha = make_base(base, args.base_mib << 20, rng)
        t_index = build_index(base, sha, d / "cache")
        rows = [bench_case(case, d, base, sha, args, rng) for case in args.cases.split(",")]
    report(rows, args.base_mib, t_index)


if __name__ == "__main__":
    main()
