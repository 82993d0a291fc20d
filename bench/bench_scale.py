"""Benchmark: vmlog's state commands at 10, 300 and 3,000 states, each against the raw tool doing the same work.

For each size a project (two disks: system and a 16 MiB scratch) is grown by that many saves, with
its VM defined in libvirt but stopped; then, median of ``--rounds``:

* ``save (stopped)``: ``vml state save`` in-process (``vmlog.app.states.save_state``) against two
  ``qemu-img create -f qcow2 -b TOP -F qcow2`` (one per disk, as a user would type them) plus the
  ``virsh define`` that points the VM at them;
* ``save (running)`` with ``--running``: the same on the VM running (its firmware finds nothing to boot
  and waits, so no guest is needed), the mean over one cycle of the bounded chain (the save that moves
  the disk onto a checkpoint included), against ``virsh snapshot-create-as --disk-only --no-metadata
  --atomic`` with both disks on a chain as deep (:func:`running_save` says why);
* ``tree``, ``list``, ``log``: ``vml state tree`` / ``state list`` / ``log`` in-process against
  ``git log --oneline`` of a repository with as many commits;
* ``status``: ``vml status`` in-process against ``virsh list --all``;
* ``project list``: 50 projects (the grown one and 49 small ones) against ``virsh list --all``.

The ``cli`` column runs the ``vml`` command itself (its start-up included) for the saves and the read-only ones.

``--startup`` adds the start-up table: ``vml --version``, ``--help``, ``project list [--json]``,
``state list`` and ``state tree`` as typed (the quick path), and the same with the typer application
built first (the full CLI, as every command ran before the quick path), against ``virsh list --all``, a Python that only
connects to libvirt and lists, and ``python -c pass``; best and median of ``--startup-rounds`` runs each,
byte-code cached as an installed ``vml`` has it. ``--sizes ''`` measures start-up alone.

    python bench/bench_scale.py [--sizes 10,300,3000] [--rounds 3] [--running] [--startup]

Needs qemu-img, git and a working libvirt (``qemu:///system`` or ``$VMLOG_LIBVIRT_URI``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from hypervisors.libvirt.connection import default_uri
from vmlog.app import logbook, projects, running, states
from vmlog.app.session import session
from vmlog.projects import checkpoints
from vmlog.projects.model import SYSTEM_DISK
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.workspace import Workspace

NAME = "bench"
OTHERS = 49  # small projects beside the grown one: 50 in the project list


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_quiet(cmd: list[str], **kwargs: object) -> None:
    proc = subprocess.run(cmd, capture_output=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {proc.stderr.decode(errors='replace').strip()}")


QUICK = "from vmlog.cli.main import run; run()"  # `vml` as typed
FULL = "from vmlog.cli import main; main.app; main.run()"  # the typer application answers (no quick path)


def cli_env() -> dict[str, str]:
    """This checkout first; byte-code cached outside it, as an installed ``vml`` has it (not recompiled each run)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "vmlog-bench-pycache"))
    return env


def vml(*args: str, code: str = QUICK) -> Callable[[], None]:
    """The ``vml`` command of this checkout (its start-up included)."""
    cmd = [sys.executable, "-c", code, *args]
    env = cli_env()
    return lambda: run_quiet(cmd, env=env)


def grow(ctx: Workspace, start: int, count: int) -> None:
    """``count`` real saves of the stopped VM's files, each a logged session (the backend is not asked)."""
    files = ctx.projects.get(NAME)
    driver = OverlayChain(None)
    for i in range(start, start + count):
        with session(ctx, NAME, "state save") as op:
            state = driver.save(files, name=f"s{i}" if i % 50 == 0 else None, message=f"step {i}", author="bench",
                                memory=False)
            op.state_id = state.id


def git_repo(path: Path, commits: int) -> Path:
    """A repository of ``commits`` commits in a line (made with fast-import: seconds, not minutes)."""
    run_quiet(["git", "init", "-q", str(path)])
    lines = []
    for i in range(commits):
        lines += ["commit refs/heads/main", f"committer b <b@x> {1700000000 + i} +0000", f"data {len(f'step {i}')}",
                  f"step {i}", "M 644 inline f", f"data {len(str(i))}", str(i), ""]
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input="\n".join(lines).encode(), check=True)
    run_quiet(["git", "-C", str(path), "checkout", "-q", "main"])
    return path


Row = tuple[str, float, float, float | None]


def measure(ctx: Workspace, size: int, rounds: int, with_running: bool, work: Path) -> list[Row]:
    """Rows of (what, vmlog seconds, raw tool seconds, vml command seconds)."""
    uri = default_uri()
    files = ctx.projects.get(NAME)
    repo = git_repo(work / f"git-{size}", size)
    git_log = lambda: run_quiet(["git", "-C", str(repo), "log", "--oneline"])  # noqa: E731
    virsh_list = lambda: run_quiet(["virsh", "-q", "-c", uri, "list", "--all"])  # noqa: E731
    from hypervisors import registry

    with registry.open_backend("kvm") as hv:  # the saves that grew the project left the VM on older layers
        hv.redefine(files.vm_spec(files.load()))
    vm_name = files.load().vm_name
    xml = work / "domain.xml"
    xml.write_text(subprocess.run(["virsh", "-q", "-c", uri, "dumpxml", "--inactive", vm_name],
                                  check=True, capture_output=True, text=True).stdout)

    def raw_save() -> None:
        for label, layer in files.load().live.items():
            top = files.layers.path(layer)
            new = work / f"raw-{label}.qcow2"
            new.unlink(missing_ok=True)
            run_quiet(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(top), "-F", "qcow2", str(new)])
        run_quiet(["virsh", "-q", "-c", uri, "define", str(xml)])

    rows = [("save (stopped)", timed(lambda: states.save_state(NAME, ctx=ctx), rounds), timed(raw_save, rounds),
             timed(vml("state", "save", "-p", NAME), rounds))]
    rows.append(("tree", timed(lambda: states.state_tree(NAME, ctx=ctx), rounds), timed(git_log, rounds),
                 timed(vml("state", "tree", "-p", NAME), rounds)))
    rows.append(("list", timed(lambda: states.states(NAME, ctx=ctx), rounds), timed(git_log, rounds),
                 timed(vml("state", "list", "-p", NAME), rounds)))
    rows.append(("log", timed(lambda: logbook.history(NAME, ctx=ctx), rounds), timed(git_log, rounds),
                 timed(vml("log", NAME), rounds)))
    rows.append(("status", timed(lambda: running.status(NAME, ctx=ctx), rounds), timed(virsh_list, rounds),
                 timed(vml("status", NAME), rounds)))
    rows.append(project_list(ctx, rounds))
    if with_running:
        rows.append(running_save(ctx, rounds, work, uri))
    return rows


def running_save(ctx: Workspace, rounds: int, work: Path, uri: str) -> Row:
    """vmlog's running save, over one cycle of its bounded chain, against the raw snapshot at the same depth.

    A live snapshot costs more the deeper the disk's chain (libvirt and QEMU walk it): measured here,
    ``virsh snapshot-create-as`` takes 0.20 s at 35 files and 1.0 s at 85. vmlog's chain stays within
    :data:`~vmlog.projects.checkpoints.MAX_CHAIN_FILES` because one save in each cycle moves the disk onto
    a checkpoint (slower: that save copies and pivots), so vmlog's figure is the mean over one whole cycle,
    and the raw tool's the median of ``rounds`` snapshots starting where the cycle ended.
    """
    files = ctx.projects.get(NAME)
    vm_name = files.load().vm_name
    from hypervisors import registry

    with registry.open_backend("kvm") as hv:  # the raw saves' ``virsh define`` left the VM on the layers before ours
        hv.redefine(files.vm_spec(files.load()))
    ctx.home.vm_runtime_dir(vm_name).mkdir(parents=True, exist_ok=True)  # QEMU opens the console log there
    run_quiet(["virsh", "-q", "-c", uri, "start", vm_name])
    try:
        cycle = [timed(lambda: states.save_state(NAME, ctx=ctx), 1) for _ in range(checkpoints.MAX_CHAIN_FILES)]
        ours = statistics.mean(cycle)
        ours_cli = timed(vml("state", "save", "-p", NAME), rounds)
        depth = len(checkpoints.chain_files(files.layers.path(files.load().live[SYSTEM_DISK])))

        def raw() -> None:
            n = time.monotonic_ns()
            run_quiet(["virsh", "-q", "-c", uri, "snapshot-create-as", vm_name, "--disk-only", "--no-metadata",
                       "--atomic", "--diskspec", f"vda,file={work}/raw-a{n}.qcow2",
                       "--diskspec", f"vdb,file={work}/raw-b{n}.qcow2"])

        theirs = timed(raw, rounds)
    finally:
        run_quiet(["virsh", "-q", "-c", uri, "destroy", vm_name])
    print(f"running saves: {len(cycle)} in a cycle, {min(cycle):.3f}-{max(cycle):.3f} s each; "
          f"raw snapshots from a chain of {depth} files", file=sys.stderr)
    return ("save (running)", ours, theirs, ours_cli)


def project_list(ctx: Workspace, rounds: int) -> Row:
    """All projects (the grown one and :data:`OTHERS` small ones) against ``virsh list --all``."""
    uri = default_uri()
    return (f"project list ({len(ctx.projects.names())})", timed(lambda: projects.list_projects(ctx), rounds),
            timed(lambda: run_quiet(["virsh", "-q", "-c", uri, "list", "--all"]), rounds),
            timed(vml("project", "list"), rounds))


def startup(rounds: int) -> list[tuple[str, float, float]]:
    """(what, best, median) of each start-up, the raw tools' beside vmlog's."""
    uri = default_uri()
    connect = f"import libvirt; c = libvirt.openReadOnly({uri!r}); c.listAllDomains(0); c.getAllDomainStats(1, 0)"
    runs: list[tuple[str, Callable[[], None]]] = [
        ("python -c pass", lambda: run_quiet([sys.executable, "-c", "pass"], env=cli_env())),
        ("virsh list --all", lambda: run_quiet(["virsh", "-q", "-c", uri, "list", "--all"])),
        ("python + libvirt list", lambda: run_quiet([sys.executable, "-c", connect], env=cli_env())),
    ]
    for args in (["--version"], ["--help"], ["project", "list"], ["project", "list", "--json"],
                 ["state", "list", "-p", NAME], ["state", "list", "-p", NAME, "--json"],
                 ["state", "tree", "-p", NAME]):  # fmt: skip
        runs.append((f"vml {' '.join(args)}", vml(*args)))
        if args[0] != "--help" and args[0] != "--version":
            runs.append((f"  full CLI: {' '.join(args)}", vml(*args, code=FULL)))
    rows = []
    for what, fn in runs:
        fn()  # warm: byte-code written, page cache filled
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        rows.append((what, min(times), statistics.median(times)))
    return rows


def print_startup(rows: list[tuple[str, float, float]], file: TextIO = sys.stdout) -> None:
    virsh = next(best for what, best, _median in rows if what.startswith("virsh"))
    print(f"{'start-up':<34} {'best':>8} {'median':>8} {'best/virsh':>10}", file=file)
    for what, best, median in rows:
        print(f"{what:<34} {best:7.3f}s {median:7.3f}s {best / virsh:9.1f}x", file=file)


def print_table(results: dict[int, list[Row]], file: TextIO = sys.stdout) -> None:
    print(f"{'states':>6}  {'command':<18} {'vmlog':>9} {'raw tool':>9} {'ratio':>6} {'vml cli':>9} {'ratio':>6}",
          file=file)
    for size, rows in results.items():
        for what, ours, raw, cli in rows:
            cli_text = f"{cli:8.3f}s {cli / raw:5.1f}x" if cli is not None else ""
            print(f"{size or '-':>6}  {what:<18} {ours:8.3f}s {raw:8.3f}s {ours / raw:5.2f}x {cli_text}", file=file)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,300,3000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--running", action="store_true", help="also save with the VM running")
    ap.add_argument("--startup", action="store_true", help="also time the start-up of vml's commands")
    ap.add_argument("--startup-rounds", type=int, default=15)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: dict[int, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # libvirt's QEMU reads the disks
        base = work / "base.img"
        with base.open("wb") as f:
            f.truncate(64 * 1024 * 1024)
        grown = 0
        os.environ["VMLOG_HOME"] = str(work / "home")
        ctx = Workspace.default()
        projects.new_project(NAME, str(base), scratch_size="16M", ctx=ctx)
        for i in range(OTHERS):
            projects.new_project(f"p{i:02d}", str(base), ctx=ctx)
        files = ctx.projects.get(NAME)
        from hypervisors import registry

        with registry.open_backend("kvm") as hv:
            hv.define(files.vm_spec(files.load()))
        try:
            for size in sizes:
                started = time.perf_counter()
                grow(ctx, grown, size - grown)
                grown = size
                print(f"grew to {size} states in {time.perf_counter() - started:.1f} s", file=sys.stderr)
                results[size] = measure(ctx, size, args.rounds, args.running, work)
                print_table({size: results[size]}, file=sys.stderr)  # as it goes; the whole table at the end
                grown += 2 * args.rounds  # the measured saves (in-process and CLI) are states too
                grown += args.rounds + checkpoints.MAX_CHAIN_FILES if args.running else 0
            if args.startup:
                if not grown:
                    grow(ctx, 0, 10)
                startup_rows = startup(args.startup_rounds)
        finally:
            for name in ctx.projects.names():
                projects.remove_project(name, ctx=ctx)
    print_table(results)
    if args.startup:
        print_startup(startup_rows)


if __name__ == "__main__":
    main()
