"""The VMware backend against the simulated vmrun: documented .vmx keys, real delta VMDKs, snapshot names."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.errors import InvalidState, Unsupported, VMNotFound
from hypervisors.spec import DiskSpec, NicSpec, PortForward, SharedFolder, VMSpec
from hypervisors.vmware import VMwareHypervisor, vmx
from hypervisors.vmware.vmrun import map_error


def _base(tmp_path: Path) -> Path:
    raw = tmp_path / "base.raw"
    with raw.open("wb") as f:
        f.truncate(32 << 20)
        f.seek(3 << 20)
        f.write(b"shared base " * 2000)
    return raw


@pytest.fixture
def vmw(simulated_tools: Path) -> VMwareHypervisor:
    return VMwareHypervisor(vm_root=simulated_tools / "vms")


def _spec(name: str, disk: Path, work: Path) -> VMSpec:
    return VMSpec(name=name, memory_mib=128, disks=(DiskSpec(disk, "vmdk", label="system"),),
                  shared_folders=(SharedFolder("results", work),), serial_log=work / "console.log",
                  channel_socket=work / "agent.sock")


def _info(path: Path) -> dict:
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "vmdk", str(path)],
                                     capture_output=True, text=True, check=True).stdout)


def test_vmx_holds_only_documented_keys(vmw: VMwareHypervisor, tmp_path: Path) -> None:
    base = vmw.import_disk(_base(tmp_path), "raw", tmp_path / "base.vmdk").path
    vmw.define(_spec("keys", base, tmp_path))
    values = vmx.read(vmw.vmx_path("keys"))
    assert all(vmx.DOCUMENTED_KEYS.match(k) for k in values), [k for k in values if not vmx.DOCUMENTED_KEYS.match(k)]
    assert values["serial1.fileType"] == "pipe" and values["serial1.pipe.endPoint"] == "server"
    assert values["sharedFolder0.guestName"] == "results" and values["sharedFolder0.writeAccess"] == "FALSE"
    assert values["memsize"] == "128"


def test_linked_clone_is_a_real_delta_vmdk_and_the_base_is_never_written(vmw: VMwareHypervisor,
                                                                         tmp_path: Path) -> None:
    raw = _base(tmp_path)
    base = vmw.import_disk(raw, "raw", tmp_path / "base.vmdk").path
    qemu_img.check(base, "vmdk")
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    vmw.define(_spec("clone", base, tmp_path))
    top = vmw.disk_tops("clone")["system"]
    info = _info(top)
    assert info["format-specific"]["data"]["parent-cid"] == _info(base)["format-specific"]["data"]["cid"]
    # the guest writes into the delta
    qemu_img.check(top, "vmdk")
    subprocess.run(["qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 1M 64k", str(top)], check=True,
                   capture_output=True)
    first = vmw.snapshot_create("clone", "s")
    second = vmw.snapshot_create("clone", "s")
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before
    for path in Path(vmw.vmx_path("clone")).parent.glob("*.vmdk"):
        qemu_img.check(path, "vmdk")
    out = vmw.export_disk("clone", "system", tmp_path / "out.qcow2")
    assert not qemu_img.compare(out, "qcow2", raw, "raw")  # the write is there
    expected = tmp_path / "expected.raw"
    expected.write_bytes(raw.read_bytes())
    subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 1M 64k", str(expected)], check=True,
                   capture_output=True)
    assert qemu_img.compare(out, "qcow2", expected, "raw")
    names = {s.id: s.name for s in vmw.snapshot_list("clone")}
    assert names == {first: "s", second: "s"}  # child of "s" may reuse the name: its path "s/s" is unique


def test_duplicate_sibling_names_stay_addressable(vmw: VMwareHypervisor, tmp_path: Path) -> None:
    base = vmw.import_disk(_base(tmp_path), "raw", tmp_path / "base.vmdk").path
    vmw.define(_spec("dups", base, tmp_path))
    root = vmw.snapshot_create("dups", "calibrated")
    one = vmw.snapshot_create("dups", "try")
    vmw.snapshot_restore("dups", root)
    two = vmw.snapshot_create("dups", "try")
    names = {s.id: s.name for s in vmw.snapshot_list("dups")}
    assert names[one] == "try" and names[two] == "try (2)"
    vmw.snapshot_restore("dups", one)
    vmw.snapshot_delete("dups", two)
    assert {s.id for s in vmw.snapshot_list("dups")} == {root, one}


def test_import_delta_makes_a_delta_vmdk_on_the_base(vmw: VMwareHypervisor, tmp_path: Path) -> None:
    raw = _base(tmp_path)
    base_vmdk = vmw.import_disk(raw, "raw", tmp_path / "base.vmdk").path
    overlay = qemu_img.create_overlay(tmp_path / "state.qcow2", raw, "raw")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x33 2M 128k", str(overlay)], check=True,
                   capture_output=True)
    delta = vmw.import_delta(overlay, "qcow2", base_vmdk, tmp_path / "state.vmdk").path
    qemu_img.check(delta, "vmdk")
    assert _info(delta)["backing-filename"] == "base.vmdk"
    assert delta.stat().st_size < 2 << 20  # only the changed clusters
    assert qemu_img.compare(delta, "vmdk", overlay, "qcow2")


def test_errors(vmw: VMwareHypervisor, tmp_path: Path) -> None:
    with pytest.raises(VMNotFound):
        vmw.state("missing")
    base = vmw.import_disk(_base(tmp_path), "raw", tmp_path / "base.vmdk").path
    spec = _spec("fwd", base, tmp_path).replace(nics=(NicSpec(forwards=(PortForward(2222, 22),)),))
    with pytest.raises(Unsupported):
        vmw.define(spec)
    assert isinstance(map_error("stop", "Error: The virtual machine is not powered on: /x.vmx\n", 255), InvalidState)
    probe = vmw.probe()
    assert probe.available and probe.details["version"] == "1.17.0"
