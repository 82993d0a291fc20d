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

    python bench/bench_bundle.py [--base-mib 1024] [--writes 4000] [--cases scattered,text,mixed,copied]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import random
import resource
import shutil
import subprocess
import tempfile
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
    summary, t_export, c_export = timed_cpu(lambda: writer.write(w / "state.vmlstate"))

    def raw_export() -> None:
        run(["qemu-img", "convert", "-O", "qcow2", "-B", str(base), "-F", "raw", str(top), str(w / "raw.qcow2")])
        run(["zstd", "-q", "-3", "-T0", str(w / "raw.qcow2"), "-o", str(w / "raw.qcow2.zst")])

    _, t_raw_export, c_raw_export = timed_cpu(raw_export)
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
    print("export CPU seconds (all threads and child processes), unaffected by other load on the machine:")
    for r in rows:
        print(
            f"  {r['case']:10} bundle {r['c_export']:6.2f}  raw tools {r['c_raw_export']:6.2f}"
            f"  x raw {r['c_export'] / r['c_raw_export']:5.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-mib", type=int, default=1024)
    ap.add_argument("--writes", type=int, default=4000, help="scattered incompressible 4 KiB guest writes")
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
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
