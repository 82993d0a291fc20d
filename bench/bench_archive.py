"""Benchmark: project archive size against flattened states, and archive/unarchive speed against ``tar | zstd``.

One run on mostly incompressible data: a random raw base, and a tree of states (a chain and a
branch) each adding incompressible guest writes. It prints

* the archive's size against the sum of ``qemu-img convert -c -O qcow2`` of every state (what
  freezing each state as its own disk would cost: the base again in every one), and against
  ``tar | zstd -3 -T0`` of the same files (the base and the project's layers);
* archive, verify and unarchive throughput (bytes of disk files per second of wall time) against
  ``tar -cf - FILES | zstd -3 -T0`` and ``zstd -d | tar -xf -`` of those files.

    python bench/bench_archive.py [--base-mib 512] [--states 6] [--write-mib 16]

Runs on libvirt's test driver (no VM is started); needs qemu-img, qemu-io, tar and zstd.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VMLOG_LIBVIRT_URI", "test:///default")


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its finished children: independent of other load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn):  # type: ignore[no-untyped-def]
    """The result, wall seconds and CPU seconds of ``fn()``."""
    before = cpu_seconds()
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start, cpu_seconds() - before)


def make_base(path: Path, size: int, rng: random.Random) -> None:
    with open(path, "wb") as fh:
        for _ in range(0, size, 16 << 20):
            fh.write(rng.randbytes(min(16 << 20, size - fh.tell())))


def guest_writes(layer: Path, work: Path, total: int, size: int, rng: random.Random) -> None:
    """``total`` bytes of incompressible writes of 64 KiB to 1 MiB at random places, no two with the same bytes."""
    commands: list[str] = []
    done = 0
    while done < total:
        length = rng.choice((64 << 10, 256 << 10, 1 << 20))
        offset = rng.randrange(0, (size - length) // 65536) * 65536
        source = work / f"write-{len(commands)}.bin"
        source.write_bytes(rng.randbytes(length))
        commands += ["-c", f"write -s {source} {offset} {length}"]
        done += length
    subprocess.run(["qemu-io", "-f", "qcow2", *commands, str(layer)], check=True, capture_output=True)
    for path in work.glob("write-*.bin"):
        path.unlink()


def build_project(home: Path, work: Path, base_mib: int, states: int, write_mib: int) -> tuple[list[Path], int]:
    """A project with ``states`` states (half a chain, half a branch off the first); its files and their bytes."""
    from vmlog.app import projects
    from vmlog.app import states as app_states
    from vmlog.projects.model import SYSTEM_DISK
    from vmlog.workspace import Workspace

    rng = random.Random(20261202)
    ctx = Workspace.default()
    base = work / "base.raw"
    make_base(base, base_mib << 20, rng)
    image = ctx.images.add_file(base, name="benchbase", version="1", format="raw", move=True)
    projects.new_project("bench", image.sha256, ctx=ctx)
    files = ctx.projects.get("bench")
    for index in range(states):
        if index == states // 2 + 1:
            app_states.restore_state("bench", "s0", discard=True, ctx=ctx)
        live = files.layers.path(files.load().live[SYSTEM_DISK])
        guest_writes(live, work, write_mib << 20, base_mib << 20, rng)
        app_states.save_state("bench", f"s{index}", ctx=ctx)
    layers = sorted({files.layers.path(layer) for s in files.states().values() for layer in s.layers.values()})
    paths = [image.path, *layers]
    return paths, sum(p.stat().st_size for p in paths)


def flattened_size(work: Path) -> int:
    """The sum of ``qemu-img convert -c -O qcow2`` of every state's disk."""
    from vmlog.projects.model import SYSTEM_DISK
    from vmlog.workspace import Workspace

    files = Workspace.default().projects.get("bench")
    total = 0
    for state in files.states().values():
        flat = work / f"flat-{state.id}.qcow2"
        subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", "-f", "qcow2",
                        str(files.layers.path(state.layers[SYSTEM_DISK])), str(flat)], check=True)
        total += flat.stat().st_size
        flat.unlink()
    return total


def tar_zstd(paths: list[Path], out: Path) -> None:
    args = ["tar", "-cf", "-"]
    for path in paths:
        args += ["-C", str(path.parent), path.name]
    tar = subprocess.Popen(args, stdout=subprocess.PIPE)
    subprocess.run(["zstd", "-q", "-3", "-T0", "--long=27", "-o", str(out)], stdin=tar.stdout, check=True)
    tar.wait()


def untar_zstd(archive: Path, dest: Path) -> None:
    dest.mkdir()
    unzstd = subprocess.Popen(["zstd", "-q", "-d", "-c", "--long=27", str(archive)], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-xf", "-", "-C", str(dest)], stdin=unzstd.stdout, check=True)
    unzstd.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-mib", type=int, default=512)
    parser.add_argument("--states", type=int, default=6)
    parser.add_argument("--write-mib", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=os.environ.get("BENCH_DIR")))
    try:
        os.environ["VMLOG_HOME"] = str(work / "home")
        (work / "home").mkdir()
        paths, raw = build_project(work / "home", work, args.base_mib, args.states, args.write_mib)
        from vmlog.app.archive import archive_project, unarchive_project, verify_archive
        from vmlog.workspace import Workspace

        out = work / "bench.vmlarchive"
        result, t_archive = timed(lambda: archive_project("bench", out, ctx=Workspace.default()))
        _, t_verify = timed(lambda: verify_archive(out))
        flat = flattened_size(work)
        raw_tar = work / "raw.tar.zst"
        _, t_tar = timed(lambda: tar_zstd(paths, raw_tar))
        _, t_untar = timed(lambda: untar_zstd(raw_tar, work / "untarred"))
        os.environ["VMLOG_HOME"] = str(work / "home2")
        (work / "home2").mkdir()
        _, t_unarchive = timed(lambda: unarchive_project(out, ctx=Workspace.default()))
        report(args, raw, result.size, flat, raw_tar.stat().st_size, t_archive, t_verify, t_unarchive, t_tar, t_untar)
    finally:
        shutil.rmtree(work, ignore_errors=True)


Times = tuple[float, float]  # wall, CPU seconds


def _row(what: str, raw: int, t: Times, ref: Times) -> str:
    return (f"{what:34} {t[0]:8.2f} {raw / 1e6 / t[0]:7.0f} {t[0] / ref[0]:8.2f} {t[1]:8.2f}"
            f" {t[1] / ref[1]:8.2f}")


def report(args: argparse.Namespace, raw: int, size: int, flat: int, tar_size: int, t_archive: Times,
           t_verify: Times, t_unarchive: Times, t_tar: Times, t_untar: Times) -> None:
    mb = 1e6
    print(f"base {args.base_mib} MiB incompressible, {args.states} states x {args.write_mib} MiB incompressible"
          f" writes; {raw / mb:.0f} MB of disk files (base + layers)")
    print(f"{'':34} {'size MB':>9} {'x archive':>10}")
    print(f"{'archive (.vmlarchive)':34} {size / mb:9.1f} {1.0:10.2f}")
    print(f"{'sum of qemu-img convert -c':34} {flat / mb:9.1f} {flat / size:10.2f}")
    print(f"{'tar | zstd -3 -T0 of the same files':34} {tar_size / mb:9.1f} {tar_size / size:10.2f}")
    print(f"{'':34} {'wall s':>8} {'MB/s':>7} {'x raw':>8} {'CPU s':>8} {'x raw':>8}")
    print(_row("archive", raw, t_archive, t_tar))
    print(_row("  raw: tar | zstd -3 -T0", raw, t_tar, t_tar))
    print(_row("verify (reads all, writes nothing)", raw, t_verify, t_untar))
    print(_row("unarchive (verify, then write)", raw, t_unarchive, t_untar))
    print(_row("  raw: zstd -d | tar -x", raw, t_untar, t_untar))


if __name__ == "__main__":
    main()
