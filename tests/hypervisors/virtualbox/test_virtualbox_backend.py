"""The VirtualBox backend against the simulated VBoxManage: settings, real VDI disks, snapshot tree, errors."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.base import VMState
from hypervisors.errors import BackendUnavailable, InvalidState, OperationFailed, VMNotFound
from hypervisors.spec import DiskSpec, NicSpec, PortForward, SharedFolder, VMSpec
from hypervisors.virtualbox import VirtualBoxHypervisor
from hypervisors.virtualbox.backend import base_uuid_for
from hypervisors.virtualbox.diagnostics import map_error
from hypervisors.virtualbox.machinereadable import parse_info, parse_snapshot_tree, parse_vm_list
from hypervisors.virtualbox.settings import define_commands

# Options of `VBoxManage modifyvm` as the manual (chapter 8.8) documents them: the backend may use no other.
DOCUMENTED_MODIFYVM = {
    "--memory", "--cpus", "--firmware", "--ioapic", "--boot1", "--boot2", "--boot3", "--boot4", "--nic1",
    "--nictype1", "--cableconnected1", "--macaddress1", "--natpf1", "--uart1", "--uartmode1", "--uart2",
    "--uartmode2",
}

NOT_FOUND = """VBoxManage: error: Could not find a registered machine named 'nope'
VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, \
interface IVirtualBox, callee nsISupports
VBoxManage: error: Context: "FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())" at line 2611 of file \
VBoxManageInfo.cpp
"""


def _base(tmp_path: Path) -> Path:
    raw = tmp_path / "base.raw"
    with raw.open("wb") as f:
        f.truncate(32 << 20)
        f.seek(5 << 20)
        f.write(b"vmlog base content " * 1000)
    return raw


@pytest.fixture
def vbox(simulated_tools: Path) -> VirtualBoxHypervisor:
    return VirtualBoxHypervisor(machine_folder=simulated_tools / "machines", api="vboxmanage")


def _spec(name: str, disk: Path, work: Path, **changes: object) -> VMSpec:
    spec = VMSpec(name=name, memory_mib=128, disks=(DiskSpec(disk, "vdi", label="system"),),
                  nics=(NicSpec(forwards=(PortForward(2222, 22),)),),
                  shared_folders=(SharedFolder("results", work),), serial_log=work / "console.log",
                  channel_socket=work / "agent.sock")
    return spec.replace(**changes) if changes else spec


def test_parsers_read_the_documented_formats() -> None:
    info = parse_info('name="a b"\nmemory=512\n"SATA-0-0"="/x/y.vdi"\nVMState="saved"\n'
                      'SnapshotName="r"\nSnapshotUUID="1"\nSnapshotName-1="c"\nSnapshotUUID-1="2"\n'
                      'SnapshotName-1-1="g"\nSnapshotUUID-1-1="3"\nSnapshotName-2="d"\nSnapshotUUID-2="4"\n'
                      'CurrentSnapshotUUID="3"\n')
    assert info["memory"] == "512" and info["SATA-0-0"] == "/x/y.vdi" and info["name"] == "a b"
    snaps, current = parse_snapshot_tree(info)
    assert {s.id: s.parent_id for s in snaps} == {"1": None, "2": "1", "3": "2", "4": "1"}
    assert current == "3"
    assert parse_vm_list('"p 1" {0e5c2d0e-3a8c-4c47-b3e6-1d7f5c0b8a11}\n') == {
        "p 1": "0e5c2d0e-3a8c-4c47-b3e6-1d7f5c0b8a11"}


def test_errors_map_to_specific_exceptions() -> None:
    assert isinstance(map_error("showvminfo nope", NOT_FOUND, 1), VMNotFound)
    vtx = map_error("startvm x", "VBoxManage: error: VT-x is being used by another hypervisor "
                    "(VERR_VMX_IN_VMX_ROOT_MODE).\nVBoxManage: error: Details: code NS_ERROR_FAILURE (0x80004005)", 1)
    assert isinstance(vtx, OperationFailed) and "kvm" in (vtx.fix or "").lower()
    drv = map_error("startvm x", "WARNING: The vboxdrv kernel module is not loaded.\n"
                    "VBoxManage: error: The virtual machine 'x' has terminated unexpectedly", 1)
    assert isinstance(drv, BackendUnavailable) and "vboxconfig" in (drv.fix or "")


def test_define_uses_only_documented_settings(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    disk = vbox.import_disk(_base(tmp_path), "raw", tmp_path / "base.vdi").path
    spec = _spec("doc-check", disk, tmp_path)
    used = {a for cmd in define_commands(spec) if cmd[0] == "modifyvm" for a in cmd if a.startswith("--")}
    assert used <= DOCUMENTED_MODIFYVM
    vbox.define(spec)
    settings = vbox.machine_settings("doc-check")
    assert settings["memory"] == "128" and settings["VMState"] == "poweroff"
    assert settings["Forwarding(0)"] == "tcp2222,tcp,127.0.0.1,2222,,22"
    assert settings["uartmode1"] == f"file,{tmp_path / 'console.log'}"
    assert settings["uartmode2"] == f"server,{tmp_path / 'agent.sock'}"
    assert settings["SharedFolderNameMachineMapping1"] == "results"
    # the VM writes into its own differencing image, never into the base it was given
    assert Path(settings["SATA-0-0"]) != disk and "Snapshots" in settings["SATA-0-0"]
    assert vbox.state("doc-check") == VMState.STOPPED


def test_base_vdi_is_a_valid_vdi_whose_uuid_follows_its_content(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    raw = _base(tmp_path)
    one = vbox.import_disk(raw, "raw", tmp_path / "one.vdi").path
    two = vbox.import_disk(raw, "raw", tmp_path / "two.vdi").path
    qemu_img.check(one, "vdi")
    assert qemu_img.compare(one, "vdi", raw, "raw")

    def header_uuid(path: Path) -> str:
        data = path.read_bytes()[:0x200]
        return str(uuid.UUID(bytes_le=data[0x188:0x198]))

    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    assert header_uuid(one) == header_uuid(two) == base_uuid_for(digest)
    back = tmp_path / "back.raw"
    qemu_img.convert(one, back, src_format="vdi", dest_format="raw")
    assert back.read_bytes() == raw.read_bytes()


def test_snapshot_tree_take_restore_delete(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    disk = vbox.import_disk(_base(tmp_path), "raw", tmp_path / "base.vdi").path
    vbox.define(_spec("tree", disk, tmp_path))
    a = vbox.snapshot_create("tree", "a")
    b = vbox.snapshot_create("tree", "b")
    vbox.snapshot_restore("tree", a)
    c = vbox.snapshot_create("tree", "c")
    assert {s.id: s.parent_id for s in vbox.snapshot_list("tree")} == {a: None, b: a, c: a}
    with pytest.raises(InvalidState, match="more than one child"):
        vbox.snapshot_delete("tree", a)  # a branch point cannot be merged in VirtualBox
    vbox.snapshot_delete("tree", b)
    assert [s.id for s in vbox.snapshot_list("tree")] == [a, c]
    assert vbox.current_snapshot("tree") == c


def test_export_flattens_with_clonemedium_to_identical_content(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    raw = _base(tmp_path)
    disk = vbox.import_disk(raw, "raw", tmp_path / "base.vdi").path
    vbox.define(_spec("exp", disk, tmp_path))
    vbox.snapshot_create("exp", "s")
    out = vbox.export_disk("exp", "system", tmp_path / "exp.qcow2")
    qemu_img.check(out, "qcow2")
    assert qemu_img.compare(out, "qcow2", raw, "raw")
    vdi = vbox.export_disk("exp", "system", tmp_path / "exp.vdi", fmt="vdi")
    qemu_img.check(vdi, "vdi")
    assert qemu_img.compare(vdi, "vdi", raw, "raw")


def test_unknown_vm_and_fault_injection(vbox: VirtualBoxHypervisor, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VMNotFound):
        vbox.state("no-such-vm")
    assert vbox.probe().available
    monkeypatch.setenv("VBOX_SIM_FAULT", "vboxdrv")
    probe = vbox.probe()
    assert not probe.available and "vboxconfig" in (probe.fix or "")
    monkeypatch.setenv("VBOX_SIM_FAULT", "vtx")
    disk = vbox.import_disk(_base(tmp_path), "raw", tmp_path / "base.vdi").path
    vbox.define(_spec("vtx", disk, tmp_path))
    with pytest.raises(OperationFailed) as caught:
        vbox.start("vtx")
    assert "VERR_VMX_IN_VMX_ROOT_MODE" in caught.value.message and "modprobe" in (caught.value.fix or "")


def test_delete_removes_the_vm_and_keeps_the_base(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    raw = _base(tmp_path)
    disk = vbox.import_disk(raw, "raw", tmp_path / "base.vdi").path
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    vbox.define(_spec("gone", disk, tmp_path))
    vbox.snapshot_create("gone", "s")
    vbox.delete("gone")
    assert "gone" not in vbox.list_vms()
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before
    assert vbox.machine_folder is not None and not (vbox.machine_folder / "gone").exists()
    vbox.define(_spec("gone", disk, tmp_path))  # the base can be attached again
