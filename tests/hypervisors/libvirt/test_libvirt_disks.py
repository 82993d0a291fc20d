"""Saving a running VM's disks on libvirt: one atomic snapshot call for all of them; many VMs' states in one listing."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hypervisors.base import VMState
from hypervisors.libvirt import LibvirtHypervisor
from hypervisors.libvirt.disks import live_snapshot_xml
from hypervisors.spec import DiskSpec, VMSpec

libvirt = pytest.importorskip("libvirt")
TEST_URI = "test:///default"


@pytest.fixture
def hv() -> Iterator[LibvirtHypervisor]:
    backend = LibvirtHypervisor(TEST_URI)
    yield backend
    backend.close()


@pytest.fixture
def two_disks(tmp_path: Path, hv: LibvirtHypervisor) -> Iterator[VMSpec]:
    vm = VMSpec(
        name=f"vmltest-disks-{secrets.token_hex(4)}",
        disks=(
            DiskSpec(tmp_path / "system.qcow2", label="system"),
            DiskSpec(tmp_path / "scratch.qcow2", label="scratch"),
        ),
    )
    hv.define(vm)
    yield vm
    if hv.exists(vm.name):
        hv.delete(vm.name)


class RecordingDomain:
    """The real test-driver domain, except that snapshots are recorded (the test driver has no disk-only ones)."""

    def __init__(self, real: Any, calls: list[tuple[str, int]]) -> None:
        self.real = real
        self.calls = calls

    def snapshotCreateXML(self, xml: str, flags: int) -> None:  # noqa: N802
        self.calls.append((xml, flags))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class RecordingConnection:
    def __init__(self, real: Any, calls: list[tuple[str, int]]) -> None:
        self.real = real
        self.calls = calls

    def lookupByName(self, name: str) -> RecordingDomain:  # noqa: N802
        return RecordingDomain(self.real.lookupByName(name), self.calls)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_running_two_disk_save_is_one_atomic_snapshot(
    hv: LibvirtHypervisor, two_disks: VMSpec, tmp_path: Path
) -> None:
    hv.start(two_disks.name)
    calls: list[tuple[str, int]] = []
    hv._conn = RecordingConnection(hv._conn, calls)
    tops = {"system": tmp_path / "system-2.qcow2", "scratch": tmp_path / "scratch-2.qcow2"}
    try:
        hv.swap_disks(two_disks.name, tops)
    finally:
        hv._conn = hv._conn.real
    assert len(calls) == 1
    xml, flags = calls[0]
    for flag in ("DISK_ONLY", "ATOMIC", "NO_METADATA", "REUSE_EXT"):
        assert flags & getattr(libvirt, f"VIR_DOMAIN_SNAPSHOT_CREATE_{flag}")
    disks = {d.get("name"): d for d in ET.fromstring(xml).findall("disks/disk")}
    assert {name: d.get("snapshot") for name, d in disks.items()} == {"vda": "external", "vdb": "external"}
    assert disks["vda"].find("source").get("file") == str(tops["system"])
    assert disks["vdb"].find("source").get("file") == str(tops["scratch"])
    hv.poweroff(two_disks.name)


def test_a_stopped_swap_redefines_both_disks(hv: LibvirtHypervisor, two_disks: VMSpec, tmp_path: Path) -> None:
    tops = {"system": tmp_path / "system-2.qcow2", "scratch": tmp_path / "scratch-2.qcow2"}
    hv.swap_disks(two_disks.name, tops)
    assert hv.disk_tops(two_disks.name) == tops


def test_the_snapshot_leaves_disks_it_does_not_name(two_disks: VMSpec, tmp_path: Path) -> None:
    xml = live_snapshot_xml(two_disks, {"scratch": tmp_path / "s.qcow2"})
    disks = {d.get("name"): d.get("snapshot") for d in ET.fromstring(xml).findall("disks/disk")}
    assert disks == {"vda": "no", "vdb": "external"}
    with pytest.raises(KeyError):
        live_snapshot_xml(two_disks, {"nosuch": tmp_path / "x.qcow2"})


def test_states_of_many_vms_in_one_listing(hv: LibvirtHypervisor, two_disks: VMSpec) -> None:
    hv.start(two_disks.name)
    found = hv.vm_states([two_disks.name, "test", "vmltest-not-defined"])
    assert found == {two_disks.name: VMState.RUNNING, "test": VMState.RUNNING, "vmltest-not-defined": None}
    hv.suspend(two_disks.name)
    assert hv.vm_states([two_disks.name])[two_disks.name] is VMState.SAVED
