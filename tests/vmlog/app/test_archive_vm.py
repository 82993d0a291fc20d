"""A project with three states is archived, its home deleted, and the archive unarchived in a new home boots.

One boot: the states are made offline (markers written into the scratch disk of each state), the
unarchived project restores the middle one and boots it, and the guest reads that state's marker.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.app import projects, running
from vmlog.app import states as app_states
from vmlog.app.archive import archive_project, unarchive_project
from vmlog.projects.model import SCRATCH_DISK, SYSTEM_DISK
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 300.0


def _mark(ctx: Workspace, text: str) -> None:
    files = ctx.projects.get("frozen")
    live = files.layers.path(files.load().live[SCRATCH_DISK])
    pattern = text.encode().ljust(512, b".")
    (live.parent / "marker.bin").write_bytes(pattern)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {live.parent / 'marker.bin'} 0 512", str(live)],
                   check=True, capture_output=True)
    (live.parent / "marker.bin").unlink()


@pytest.fixture
def two_homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    first, second = tmp_path / "home-2012", tmp_path / "home-2032"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv("VMLOG_HOME", str(first))
    yield first, second
    monkeypatch.setenv("VMLOG_HOME", str(second))
    ctx = Workspace.default()
    for name in ctx.projects.names():  # never leak a libvirt domain
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass


def test_an_unarchived_project_boots_in_a_new_home(two_homes, test_appliance_image: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except Exception as exc:
        pytest.skip(f"libvirt is not usable here: {exc}")
    started = time.monotonic()
    first, second = two_homes
    ctx = Workspace.default()
    image = ctx.images.add_file(test_appliance_image, name="testappliance", version="1", format="raw")
    projects.new_project("frozen", image.sha256, memory_mib=256, scratch_size="16M", ctx=ctx)
    ids = {}
    for name, parent in (("one", None), ("two", "one"), ("three", "one")):
        if parent:
            app_states.restore_state("frozen", parent, discard=True, ctx=ctx)
        _mark(ctx, f"vmlog-state-{name}")
        ids[name] = app_states.save_state("frozen", name, ctx=ctx).id
    disks = {}
    files = ctx.projects.get("frozen")
    for name, sid in ids.items():
        state = files.states()[sid]
        for label in (SYSTEM_DISK, SCRATCH_DISK):
            copy = tmp_path / f"{name}-{label}.qcow2"
            qemu_img.convert(files.layers.path(state.layers[label]), copy, src_format="qcow2", dest_format="qcow2")
            disks[(sid, label)] = copy
    out = tmp_path / "frozen.vmlarchive"
    archive_project("frozen", out, ctx=ctx)
    shutil.rmtree(first)  # the home, its store and its logbook are gone

    monkeypatch.setenv("VMLOG_HOME", str(second))
    other = Workspace.default()
    result = unarchive_project(out, ctx=other)
    assert result.states == 3
    files = other.projects.get("frozen")
    for (sid, label), copy in disks.items():
        assert qemu_img.compare(files.layers.path(files.states()[sid].layers[label]), "qcow2", copy, "qcow2")
    app_states.restore_state("frozen", "two", discard=True, ctx=other)
    running.up("frozen", ctx=other)
    channel = GuestChannel(Path(files.load().spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    with channel as guest:
        assert guest.check_output("head -c 15 /dev/vdb").strip() == "vmlog-state-two"
    running.down("frozen", mode="poweroff", ctx=other)
    print(f"archive VM test wall time: {time.monotonic() - started:.1f} s")
