"""In a real libvirt VM (test appliance, TCG): the guest reads a mounted release over virtiofs."""

from __future__ import annotations

import hashlib
import secrets
import shutil
from pathlib import Path

import pytest
from release_repos import RELEASE_FILES

from hypervisors import qemu_img
from hypervisors.spec import DiskSpec, NicSpec, VMSpec
from vmlog.releases import CvmfsSource, mount_release, running_mounts, umount
from vmlog.releases.guest_share import guest_mount_command, shared_folder
from vmlog.testappliance.agent import GuestChannel

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fuse3"),
]


@pytest.fixture
def libvirt_backend():
    libvirt_mod = pytest.importorskip("hypervisors.libvirt")
    hv = libvirt_mod.LibvirtHypervisor()
    probe = hv.probe()
    if not probe.available:
        pytest.skip(f"libvirt unavailable: {probe.summary}")
    yield hv
    hv.close()


def test_guest_reads_a_release_file_matching_its_digest(
    cvmfs_repo, server, vmlog_home, libvirt_backend, test_appliance_image: Path, tmp_path: Path
):
    source = CvmfsSource(
        f"{server.url}/cvmfs/{cvmfs_repo.name}",
        cvmfs_repo.master_public_pem(),
        pattern="sw/software/{series}/{release}",
        proxy="",
    )
    handle = mount_release(source, "24.0.3", at=tmp_path / "release-mnt")
    name = f"vmltest-rel-{secrets.token_hex(3)}"
    top = qemu_img.create_overlay(tmp_path / "system-0.qcow2", test_appliance_image, "raw", cluster_size=65536)
    spec = VMSpec(
        name=name,
        memory_mib=256,
        disks=(DiskSpec(path=top, format="qcow2", label="system"),),
        nics=(NicSpec(),),
        shared_folders=(shared_folder(handle),),
        serial_log=tmp_path / "serial.log",
        channel_socket=tmp_path / "agent.sock",
    )
    libvirt_backend.define(spec)
    try:
        libvirt_backend.start(name)
        with GuestChannel(spec.channel_socket) as guest:
            guest.wait_ready(240)
            guest.check_output(guest_mount_command(handle, "/mnt/release"), timeout=60)
            output = guest.check_output("sha256sum /mnt/release/lib/libphysics.so", timeout=120)
            expected = hashlib.sha256(RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]).hexdigest()
            assert output.split()[0] == expected
            assert guest.check_output("cat /mnt/release/share/README").strip() == "Physics release 24.0.3"
            guest.check_output("umount /mnt/release")
        pinned = handle.pinned()
        assert (pinned["release"]["revision"], pinned["release"]["pin"]) == (7, handle.release.pin)
    finally:
        libvirt_backend.delete(name)
        umount(handle.name)
    assert running_mounts() == []
