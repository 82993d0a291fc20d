"""Benchmark: bundle size and export/import time for a small change on a large disk.

Compares the bundle with the zstd-compressed changed data, with a full export of the disk, and
its export/import time with a raw ``qemu-img convert -B`` of the same change.

    python bench/bench_bundle.py [--disk-gib 2] [--writes 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import zstandard

from hypervisors import qemu_img
from vmlog.bundles import BaseImageRef, BundleReader, BundleWriter, LocalReference


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--disk-gib", type=float, default=2.0)
    ap.add_argument("--writes", type=int, default=2000, help="random 4 KiB guest writes")
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-bundle-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        d = Path(tmp)
        size = int(args.disk_gib * (1 << 30))
        base = d / "base.raw"
        # a base with real (incompressible) data in every 1 MiB of the first 256 MiB, sparse beyond
        with open(base, "wb") as fh:
            fh.truncate(size)
            for off in range(0, min(size, 256 << 20), 1 << 20):
                fh.seek(off)
                fh.write(rng.randbytes(4096) * 256)
        top = qemu_img.create_overlay(d / "top.qcow2", base, "raw", cluster_size=65536)
        changed = bytearray()
        cmds = []
        for i in range(args.writes):
            off = rng.randrange(0, size // 4096) * 4096
            cmds += ["-c", f"write -P {i % 255 + 1} {off} 4k"]
            changed += bytes([i % 255 + 1]) * 4096
        for i in range(0, len(cmds), 400):
            subprocess.run(["qemu-io", "-f", "qcow2", *cmds[i : i + 400], str(top)], check=True, capture_output=True)
        changed_zstd = len(zstandard.ZstdCompressor(level=6).compress(bytes(changed)))

        sha = hashlib.sha256(base.read_bytes()).hexdigest()
        ref = BaseImageRef(base, "raw", sha, "bench", "1", base.stat().st_size)
        writer = BundleWriter(ref, state={"id": "bench"}, vm_spec={})
        writer.add_disk("system", top)
        summary, t_export = timed(lambda: writer.write(d / "bench.vmlstate"))
        _, t_convert = timed(
            lambda: qemu_img.convert(
                top,
                d / "convertB.qcow2",
                src_format="qcow2",
                dest_format="qcow2",
                backing=base,
                backing_format="raw",
                options={"cluster_size": "65536"},
            )
        )
        convert_b_size = (d / "convertB.qcow2").stat().st_size
        recv = d / "recv"
        recv.mkdir()
        _, t_import = timed(
            lambda: BundleReader(summary.path).materialise(recv / "st", base=LocalReference(base, "raw", sha))
        )
        _, t_full = timed(
            lambda: qemu_img.convert(top, d / "full.qcow2", src_format="qcow2", dest_format="qcow2", compress=True)
        )
        full_size = (d / "full.qcow2").stat().st_size
        same = qemu_img.compare(recv / "st" / "system.qcow2", "qcow2", top, "qcow2")

    mb = 1e6
    print(f"disk {args.disk_gib} GiB, {args.writes} random 4 KiB writes ({len(changed) / mb:.1f} MB changed)")
    print(f"  changed data, zstd -6           {changed_zstd / mb:8.2f} MB")
    print(f"  .vmlstate bundle                {summary.size / mb:8.2f} MB  (fits mail: {summary.fits_mail})")
    print(f"  qemu-img convert -B (qcow2)     {convert_b_size / mb:8.2f} MB")
    print(f"  full export (convert -c)        {full_size / mb:8.2f} MB")
    print(f"  export: bundle {t_export:.2f} s   convert -B {t_convert:.2f} s   full {t_full:.2f} s")
    print(f"  import: bundle {t_import:.2f} s   (rebuilt disk identical: {same})")


if __name__ == "__main__":
    main()
