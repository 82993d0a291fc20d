"""Benchmark: saving a state costs O(1) in disk size, and `vml switch` costs what libvirt costs.

* save time of a project whose scratch disk is 1 GiB and one whose scratch disk is 20 GiB, with
  the VM stopped (file operations only) and running (live layer swap), after the guest wrote the
  same 32 MiB into the scratch disk: the ratio 20 GiB / 1 GiB should stay near 1.
* switch time (suspend the running project with memory, resume the other) against raw
  ``virsh managedsave A`` + ``virsh start B`` on the same two VMs: the ratio is vmlog's overhead.

    python bench/bench_state.py [--rounds 3]

Boots the test appliance under libvirt (TCG here); takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from vmlog.app import projects, running, states
from vmlog.workspace import Workspace


def timed(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def raw_stopped_save(files, work: Path) -> None:  # type: ignore[no-untyped-def]
    """What a user would type by hand for a stopped VM: one ``qemu-img create -b`` per disk."""
    for label, layer in files.load().live.items():
        new = work / f"raw-{label}-{time.monotonic_ns()}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(files.layers.path(layer)),
                        "-F", "qcow2", str(new)], check=True, capture_output=True)


def raw_running_save(uri: str, vm: str, work: Path) -> None:
    """What a user would type by hand for a running VM: one atomic disk-only snapshot of both disks."""
    n = time.monotonic_ns()
    subprocess.run(["virsh", "-q", "-c", uri, "snapshot-create-as", vm, "--disk-only", "--no-metadata", "--atomic",
                    "--diskspec", f"vda,file={work}/raw-a{n}.qcow2", "--diskspec", f"vdb,file={work}/raw-b{n}.qcow2"],
                   check=True, capture_output=True)


def virsh_switch(uri: str, src_vm: str, dst_vm: str) -> None:
    """What a user would type by hand: suspend one domain, start (resume) the other."""
    subprocess.run(["virsh", "-q", "-c", uri, "managedsave", src_vm], check=True, capture_output=True)
    subprocess.run(["virsh", "-q", "-c", uri, "start", dst_vm], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-state-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        os.environ["VMLOG_HOME"] = str(Path(tmp) / "home")
        run(args.rounds, Path(tmp))


def run(rounds: int, work: Path) -> None:
    from hypervisors.libvirt.connection import default_uri
    from vmlog.testappliance.agent import GuestChannel
    from vmlog.testappliance.build import build_test_appliance

    image = build_test_appliance(
        Path(os.environ.get("VMLOG_TEST_CACHE", "~/.cache/vmlog-tests")).expanduser()
    )
    ctx = Workspace.default()
    uri = default_uri()

    def guest(name: str) -> GuestChannel:
        channel = GuestChannel(Path(ctx.projects.get(name).load().spec["channel_socket"]))
        channel.wait_ready(240)
        return channel

    names = {"1GiB": "bench-1g", "20GiB": "bench-20g"}
    try:
        for size, name in names.items():
            projects.new_project(
                name, str(image), memory_mib=256, scratch_size=size.replace("iB", ""), ctx=ctx
            )
        # -- save time vs disk size ----------------------------------------------------------
        results: dict[str, dict[str, list[float]]] = {}
        raw: dict[str, list[float]] = {"stopped": [], "running": []}
        for size, name in names.items():
            files = ctx.projects.get(name)
            stopped, live = [], []
            for i in range(rounds):
                stopped.append(timed(states.save_state, name, f"stopped-{i}", ctx=ctx))
                raw["stopped"].append(timed(raw_stopped_save, files, work))
            running.up(name, ctx=ctx)
            with guest(name) as g:
                g.check_output("dd if=/dev/urandom of=/dev/vdb bs=1M count=32 2>/dev/null; sync")
                for i in range(rounds):
                    live.append(timed(states.save_state, name, f"running-{i}", ctx=ctx))
                    g.check_output("dd if=/dev/urandom of=/dev/vdb bs=1M count=4 2>/dev/null; sync")
            results[size] = {"stopped": stopped, "running": live}
        vm_b = ctx.projects.get(names["20GiB"]).load().vm_name
        for _ in range(rounds):  # last: the raw snapshots leave the VM writing into files vmlog does not know
            raw["running"].append(timed(raw_running_save, uri, vm_b, work))
        running.down(names["20GiB"], mode="poweroff", ctx=ctx)
        states.restore_state(names["20GiB"], f"running-{rounds - 1}", discard=True, ctx=ctx)
        running.up(names["20GiB"], ctx=ctx)
        guest(names["20GiB"]).close()
        print(f"save time (median of {rounds})")
        for mode in ("stopped", "running"):
            small = statistics.median(results["1GiB"][mode])
            large = statistics.median(results["20GiB"][mode])
            theirs = statistics.median(raw[mode])
            tool = "qemu-img create x2" if mode == "stopped" else "virsh snapshot-create-as"
            print(
                f"  {mode:<8} 1 GiB {small:6.3f} s   20 GiB {large:6.3f} s   ratio 20G/1G {large / small:5.2f}"
                f"   {tool} {theirs:6.3f} s   ratio {statistics.median([small, large]) / theirs:5.2f}"
            )

        # -- switch vs virsh ------------------------------------------------------------------
        a, b = names["1GiB"], names["20GiB"]
        vm = {n: ctx.projects.get(n).load().vm_name for n in (a, b)}
        running.switch(b, source=a, ctx=ctx)  # a suspended, b running
        guest(b).close()
        ours, raw = [], []
        for _ in range(rounds):
            for src, dst in ((b, a), (a, b)):
                ours.append(timed(running.switch, dst, source=src, ctx=ctx))
                guest(dst).close()
            for src, dst in ((b, a), (a, b)):
                raw.append(timed(virsh_switch, uri, vm[src], vm[dst]))
                guest(dst).close()
        mine, theirs = statistics.median(ours), statistics.median(raw)
        print(
            f"switch (median of {len(ours)}): vml {mine:6.3f} s   virsh managedsave+start {theirs:6.3f} s"
            f"   ratio {mine / theirs:5.2f}"
        )
    finally:
        for name in names.values():
            try:
                projects.remove_project(name, ctx=ctx)
            except Exception as exc:
                print(f"cleanup of {name} failed: {exc}")


if __name__ == "__main__":
    main()
