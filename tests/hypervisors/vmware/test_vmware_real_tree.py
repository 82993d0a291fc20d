"""A VM folder as ESXi left it (the real test-flo .vmx and .vmsd) read through the backend, not only the parsers.

Adopting or repairing a native tree asks ``snapshot_list`` which snapshots hold memory; with a real tree the
answer comes from the ``.vmem`` beside each ``snapshotN.filename`` ``.vmsn``, never from a ``vmState`` key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hypervisors.base import VMState
from hypervisors.vmware import VMwareHypervisor

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "vmware"
NAME = "test flo"


@pytest.fixture
def real_vm(simulated_tools: Path) -> VMwareHypervisor:
    """The real files in a VM folder of the backend's ``vm_root``, with the checkpoint files the .vmsd names."""
    hv = VMwareHypervisor(vm_root=simulated_tools / "vms")
    folder = hv.vmx_path(NAME).parent
    folder.mkdir(parents=True)
    shutil.copy(REAL / "test-flo.vmx", folder / f"{NAME}.vmx")
    shutil.copy(REAL / "test-flo.vmsd", folder / f"{NAME}.vmsd")
    for n in (1, 2, 3, 4):
        (folder / f"{NAME}-Snapshot{n}.vmsn").write_bytes(b"checkpoint")
    (folder / f"{NAME}-Snapshot3.vmem").write_bytes(b"memory")  # "third" was taken of the running VM
    return hv


def test_real_tree_lists_its_snapshots_and_the_one_with_memory(real_vm: VMwareHypervisor) -> None:
    listed = real_vm.snapshot_list(NAME)
    assert [(s.id, s.name, s.parent_id) for s in listed] == [
        ("1", "SNAPSHOT POST INSTALL", None), ("2", "SECOND", "1"), ("3", "third", "2"), ("4", "from cli", "3")]
    assert {s.id: s.has_memory for s in listed} == {"1": False, "2": False, "3": True, "4": False}


def test_real_vmx_without_checkpoint_reads_stopped_and_with_a_lowercase_one_saved(real_vm: VMwareHypervisor) -> None:
    assert real_vm.state(NAME) == VMState.STOPPED
    path = real_vm.vmx_path(NAME)
    (path.parent / f"{NAME}.vmss").write_bytes(b"suspended memory")
    path.write_text(path.read_text() + f'checkpoint.vmstate = "{NAME}.vmss"\n')
    assert real_vm.state(NAME) == VMState.SAVED
