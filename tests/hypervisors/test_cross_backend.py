"""A state saved on libvirt crosses to VirtualBox and VMware through a bundle, boots there, and comes back identical.

The libvirt side is real (libvirt + QEMU); VirtualBox and VMware run on the simulators in tests/simulators,
with real VDI/VMDK files. Booting a guest writes to its disk (the ext4 superblock at least), so each
backend boots the imported state on top of a native snapshot taken first, and restores that snapshot
before exporting: what goes back is the state as it was imported.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors import qemu_img
from hypervisors.base import Hypervisor
from hypervisors.errors import HypervisorError
from hypervisors.spec import DiskSpec, VMSpec
from vmlog.bundles.reader import BundleReader, LocalReference, sha256_file
from vmlog.bundles.writer import BaseImageRef, BundleWriter
from vmlog.testappliance.agent import GuestChannel

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 180.0


def _spec(name: str, disk: DiskSpec, workdir: Path) -> VMSpec:
    workdir.mkdir(parents=True, exist_ok=True)
    return VMSpec(name=name, memory_mib=256, disks=(disk,), serial_log=workdir / "serial.log",
                  channel_socket=workdir / "agent.sock")


def _guest(hv: Hypervisor, spec: VMSpec) -> GuestChannel:
    hv.start(spec.name)
    channel = GuestChannel(spec.channel_socket)  # type: ignore[arg-type]
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def _delta_by_content(flat: Path, base: Path, dest: Path) -> Path:
    """The clusters of ``flat`` that differ from ``base``: an empty overlay, then a safe-mode rebase."""
    qemu_img.create_overlay(dest, flat, "qcow2", cluster_size=65536)
    qemu_img.run(["rebase", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw", str(dest)])
    return dest


def _save_on_libvirt(image: Path, workdir: Path) -> tuple[Path, str]:
    """Boot the appliance under libvirt, write a file, shut down: the state's top layer and the file's digest."""
    from hypervisors.libvirt import LibvirtHypervisor

    try:
        kvm = LibvirtHypervisor()
    except HypervisorError as exc:
        pytest.skip(f"libvirt unavailable here: {exc}")
    if not kvm.probe().available:
        pytest.skip("libvirt unavailable here")
    workdir.mkdir(parents=True)
    top = qemu_img.create_overlay(workdir / "system-0.qcow2", image, "raw", cluster_size=65536)
    spec = _spec(f"vmlcross-{secrets.token_hex(4)}", DiskSpec(top, "qcow2", label="system"), workdir)
    kvm.define(spec)
    try:
        with _guest(kvm, spec) as guest:
            digest = guest.check_output(
                "head -c 200000 /dev/urandom > /data/crossing; sync; md5sum /data/crossing").split()[0]
        kvm.shutdown(spec.name, timeout=120)
    finally:
        if kvm.exists(spec.name):
            kvm.delete(spec.name)
        kvm.close()
    return top, digest


def _round_trip(hv: Hypervisor, disk: DiskSpec, workdir: Path, digest: str, base: Path, original: Path) -> None:
    """Boot ``disk`` on ``hv``, check the guest's file, restore the pre-boot snapshot, export, compare."""
    spec = _spec(f"vmlcross-{secrets.token_hex(4)}", disk, workdir)
    hv.define(spec)
    try:
        imported = hv.snapshot_create(spec.name, "imported")
        with _guest(hv, spec) as guest:
            assert guest.check_output("md5sum /data/crossing").split()[0] == digest
        hv.poweroff(spec.name)
        hv.snapshot_restore(spec.name, imported)
        hv.poweroff(spec.name)  # a restored online snapshot may come back running or saved
        flat = hv.export_disk(spec.name, "system", workdir / "exported.qcow2")
        delta = _delta_by_content(flat, base, workdir / "exported-delta.qcow2")
        assert qemu_img.info(delta, "qcow2")["backing-filename"] == str(base)
        assert qemu_img.compare(delta, "qcow2", original, "qcow2")
        assert qemu_img.compare(flat, "qcow2", original, "qcow2")
    finally:
        hv.delete(spec.name)


def test_libvirt_state_crosses_to_virtualbox_and_vmware_and_back(
    test_appliance_image: Path, tmp_path: Path, simulated_tools: Path  # noqa: F811
) -> None:
    from hypervisors.virtualbox import VirtualBoxHypervisor
    from hypervisors.virtualbox.backend import base_uuid_for
    from hypervisors.vmware import VMwareHypervisor

    raw = test_appliance_image
    original, digest = _save_on_libvirt(raw, tmp_path / "libvirt")

    # export the libvirt chain to a bundle and materialise it as the recipient would
    base_sha = sha256_file(raw)
    ref = BaseImageRef(raw, "raw", base_sha, "vmlog-test", "1", raw.stat().st_size)
    writer = BundleWriter(ref, state={"id": "crossing", "name": "crossing"}, vm_spec={"name": "crossing"})
    writer.add_disk("system", original)
    bundle = writer.write(tmp_path / "crossing.vmlstate").path
    state = BundleReader(bundle).materialise(tmp_path / "imported", base=LocalReference(raw, "raw", base_sha))
    state_top = state.disks["system"]
    assert qemu_img.compare(state_top, "qcow2", original, "qcow2")

    # VMware: the state as a delta VMDK on the shared base VMDK
    vmw = VMwareHypervisor(vm_root=simulated_tools / "vms")
    base_vmdk = vmw.import_disk(raw, "raw", tmp_path / "base.vmdk").path
    base_vmdk_bytes = sha256_file(base_vmdk)
    delta_vmdk = vmw.import_delta(state_top, "qcow2", base_vmdk, tmp_path / "crossing.vmdk")
    assert delta_vmdk.path.stat().st_size < raw.stat().st_size // 4  # a delta, not a copy
    _round_trip(vmw, DiskSpec(delta_vmdk.path, "vmdk", label="system"), tmp_path / "vmware", digest, raw, original)
    assert sha256_file(base_vmdk) == base_vmdk_bytes  # the shared base was never written

    # VirtualBox: the state as a standalone VDI (qemu-img cannot write differencing VDIs)
    vbox = VirtualBoxHypervisor(machine_folder=simulated_tools / "machines", api="vboxmanage")
    base_vdi = vbox.import_disk(raw, "raw", tmp_path / "base.vdi").path
    state_vdi = vbox.import_disk(state_top, "qcow2", tmp_path / "crossing.vdi")
    _round_trip(vbox, DiskSpec(state_vdi.path, "vdi", label="system"), tmp_path / "virtualbox", digest, raw,
                original)
    header = base_vdi.read_bytes()[0x188:0x198]
    import uuid

    assert str(uuid.UUID(bytes_le=header)) == base_uuid_for(base_sha)  # the base keeps its content UUID
