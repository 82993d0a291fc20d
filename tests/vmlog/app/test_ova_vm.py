"""An OVA as VirtualBox exports it imports as a base image and boots on kvm (one boot of the test appliance)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.app import projects, running
from vmlog.app.ova import import_ova
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 240.0
REAL_OVA = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "ova"
SAMPLE_DISK = "RAGged Edge Box-disk001.vmdk"


def virtualbox_ova(image: Path, work: Path) -> Path:
    """VirtualBox 7's export layout around the test appliance: its real OVF 1.0 descriptor (disk name and
    capacity set to this disk's), a streamOptimized VMDK, a ``SHA1 (file) = hex`` manifest, in its order."""
    vmdk = qemu_img.convert(image, work / "disk.vmdk", src_format="raw", dest_format="vmdk",
                            options={"subformat": "streamOptimized"})  # fmt: skip
    capacity = qemu_img.info(vmdk, "vmdk")["virtual-size"]
    descriptor = (REAL_OVA / "virtualbox-ragged-edge-box-ovf10.ovf").read_bytes()
    descriptor = descriptor.replace(SAMPLE_DISK.encode(), b"vmlog-test-disk001.vmdk")
    descriptor = descriptor.replace(b'ovf:capacity="4294967296"', f'ovf:capacity="{capacity}"'.encode())
    disk_sha1 = hashlib.sha1(vmdk.read_bytes()).hexdigest()
    manifest = (f"SHA1 (vmlog-test.ovf) = {hashlib.sha1(descriptor).hexdigest()}\n"
                f"SHA1 (vmlog-test-disk001.vmdk) = {disk_sha1}\n").encode()  # fmt: skip
    ova = work / "vmlog-test.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("vmlog-test.ovf", descriptor), ("vmlog-test-disk001.vmdk", vmdk.read_bytes()),
                           ("vmlog-test.mf", manifest)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return ova


@pytest.fixture
def vm_ctx(vmlog_home: Path) -> Iterator[Workspace]:
    ctx = Workspace.default()
    yield ctx
    for name in ctx.projects.names():  # never leak a libvirt domain
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass


def test_virtualbox_ova_boots_on_kvm(vm_ctx: Workspace, test_appliance_image: Path, tmp_path: Path) -> None:
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except Exception as exc:
        pytest.skip(f"libvirt is not usable here: {exc}")
    imported = import_ova(virtualbox_ova(test_appliance_image, tmp_path), ctx=vm_ctx)
    assert imported.image.format == "vmdk" and "SHA1 manifest: 2 files match" in imported.obtained
    projects.new_project("fromova", imported.image.sha256, backend="kvm", memory_mib=256, ctx=vm_ctx)
    running.up("fromova", ctx=vm_ctx)
    spec = vm_ctx.projects.get("fromova").load().spec
    channel = GuestChannel(Path(spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    with channel as guest:
        assert guest.check_output("echo booted-from-ova").strip() == "booted-from-ova"
    running.down("fromova", mode="poweroff", ctx=vm_ctx)
