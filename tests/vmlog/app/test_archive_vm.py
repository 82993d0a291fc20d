"""A project with three states and a mounted release is archived, its home and the release server deleted, and
the archive unarchived in a new home boots: the guest reads the middle state's marker and the release's files.

One boot: the states are made offline (markers written into the scratch disk of each state, the release
mounted for the next boot), the unarchived project restores the middle one and boots it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.app import projects, running
from vmlog.app import releases as app_releases
from vmlog.app import states as app_states
from vmlog.app.archive import archive_project, unarchive_project
from vmlog.projects.model import SCRATCH_DISK, SYSTEM_DISK
from vmlog.releases import CvmfsSource, running_mounts, umount
from vmlog.releases.sources import add_source
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "releases"))
from release_repos import RELEASE_FILES, CvmfsRepoBuilder, ServedDirectory  # noqa: E402

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fuse3"),
]
LIB = "/cvmfs-releases/24.0.3/lib/libphysics.so"
LIB_SHA = hashlib.sha256(RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]).hexdigest()

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
    for handle in running_mounts():
        umount(handle.name, project=handle.project, lazy=True)


def release_server(www: Path) -> tuple[ServedDirectory, CvmfsSource]:
    builder = CvmfsRepoBuilder(www)
    for series in ("24.0", "25.1"):
        builder.add_dir(f"sw/software/{series}", nested=True)
    for path, data in RELEASE_FILES.items():
        builder.add_file(f"sw/software/{path}", data, chunk_size=64 * 1024)
    builder.publish(7, "prod-2024")
    server = ServedDirectory(www)
    source = CvmfsSource(f"{server.url}/cvmfs/{builder.name}", builder.master_public_pem(),
                         pattern="sw/software/{series}/{release}", proxy="")
    return server, source


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
    projects.new_project("frozen", str(test_appliance_image), memory_mib=256, scratch_size="16M", ctx=ctx)
    (tmp_path / "www").mkdir()
    server, source = release_server(tmp_path / "www")
    add_source(source)
    assert app_releases.mount_in_project("frozen", "24.0.3", ctx=ctx).guest == "next boot"
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
    assert all(files.states()[sid].release_mounts for sid in ids.values())
    out = tmp_path / "frozen.vmlarchive"
    archive_project("frozen", out, ctx=ctx)
    app_releases.umount_in_project("frozen", "24.0.3", ctx=ctx)
    server.stop()  # the release server is gone for good
    shutil.rmtree(first)  # the home, its store, its release cache and its logbook are gone

    monkeypatch.setenv("VMLOG_HOME", str(second))
    other = Workspace.default()
    result = unarchive_project(out, ctx=other)
    assert result.states == 3
    files = other.projects.get("frozen")
    for (sid, label), copy in disks.items():
        assert qemu_img.compare(files.layers.path(files.states()[sid].layers[label]), "qcow2", copy, "qcow2")
    restored = app_states.restore_state("frozen", "two", discard=True, ctx=other)
    assert restored["releases"]["warnings"] == []  # the pinned release mounts from the archived cache objects
    assert running.up("frozen", ctx=other) == "booted"  # no warning: the guest agent mounted the release
    channel = GuestChannel(Path(files.load().spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    with channel as guest:
        assert guest.check_output("head -c 15 /dev/vdb").strip() == "vmlog-state-two"
        assert guest.check_output(f"sha256sum {LIB}", timeout=180).split()[0] == LIB_SHA
    running.down("frozen", mode="poweroff", ctx=other)
    print(f"archive VM test wall time: {time.monotonic() - started:.1f} s")
