"""A release mounted into a real project VM (libvirt, test appliance, TCG): read, saved, restored, offline."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from release_repos import RELEASE_FILES

from vmlog.app import projects, running, states
from vmlog.app import releases as app_releases
from vmlog.releases import CvmfsSource, running_mounts, umount
from vmlog.releases.sources import add_source
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fuse3"),
]

LIB = "/cvmfs-releases/24.0.3/lib/libphysics.so"
LIB_SHA = hashlib.sha256(RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]).hexdigest()


@pytest.fixture
def vm_ctx(vmlog_home: Path) -> Iterator[Workspace]:
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except Exception as exc:
        pytest.skip(f"libvirt is not usable here: {exc}")
    ctx = Workspace.default()
    yield ctx
    for name in ctx.projects.names():
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass
    for handle in running_mounts():
        umount(handle.name, project=handle.project, lazy=True)


def guest_sha(ctx: Workspace, name: str) -> str:
    spec = ctx.projects.get(name).load().spec
    with GuestChannel(Path(spec["channel_socket"])) as guest:
        guest.wait_ready(240)
        return guest.check_output(f"sha256sum {LIB}", timeout=180).split()[0]


def test_release_in_project_vm_is_saved_restored_and_read_offline(
    vm_ctx, cvmfs_repo, server, test_appliance_image: Path
):
    ctx = vm_ctx
    add_source(
        CvmfsSource(
            f"{server.url}/cvmfs/{cvmfs_repo.name}",
            cvmfs_repo.master_public_pem(),
            pattern="sw/software/{series}/{release}",
            proxy="",
        )
    )
    projects.new_project("ana", str(test_appliance_image), memory_mib=256, ctx=ctx)
    outcome = app_releases.mount_in_project("ana", "24.0.3", ctx=ctx)
    assert outcome.guest == "next boot"
    assert "booted" == running.up("ana", ctx=ctx)  # no warning: the guest agent mounted the share
    assert guest_sha(ctx, "ana") == LIB_SHA

    # the VM now has shared memory: a second release is hot-plugged and mounted by the agent at once
    live = app_releases.mount_in_project("ana", "25.1.0", ctx=ctx)
    assert live.guest == "mounted", live.warnings
    spec = ctx.projects.get("ana").load().spec
    with GuestChannel(Path(spec["channel_socket"])) as guest:
        assert guest.check_output("cat /cvmfs-releases/25.1.0/share/README").strip() == "Physics release 25.1.0"
    app_releases.umount_in_project("ana", "25.1.0", ctx=ctx)

    state = states.save_state("ana", "with-release", ctx=ctx)  # live, the VM keeps running
    (recorded,) = state.release_mounts
    assert (recorded["release"]["revision"], recorded["release"]["tag"]) == (7, "prod-2024")
    pin = recorded["release"]["pin"]

    # QEMU cannot save a virtiofs VM's memory: refused up front, with the fix
    with pytest.raises(Exception) as caught:
        running.down("ana", mode="save", ctx=ctx)
    assert "vml release umount 24.0.3 --project ana" in caught.value.fix

    app_releases.umount_in_project("ana", "24.0.3", ctx=ctx)
    assert running_mounts(project="ana") == []
    running.down("ana", mode="poweroff", ctx=ctx)

    result = states.restore_state("ana", "with-release", discard=True, ctx=ctx)
    assert result["releases"]["warnings"] == []
    (handle,) = running_mounts(project="ana")
    assert (handle.release.revision, handle.release.pin) == (7, pin)

    server.stop()  # from now on only the cache serves the release
    running.up("ana", ctx=ctx)
    assert guest_sha(ctx, "ana") == LIB_SHA
    running.down("ana", mode="poweroff", ctx=ctx)
    umount(handle.name, project="ana", lazy=True)  # as after a host reboot: nothing mounted on the host
    assert running_mounts(project="ana") == []
    assert running.up("ana", ctx=ctx) == "booted"  # mounts the pinned revision from the cache first
    (offline,) = running_mounts(project="ana")
    assert offline.release.pin == pin
    assert guest_sha(ctx, "ana") == LIB_SHA
