"""VMware's files as ESXi/Workstation write them (tests/fixtures/real/vmware), and the simulator alike.

The real ``.vmsd`` and the simulator's go through the same reader and must say the same things.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hypervisors.base import VMState
from hypervisors.spec import DiskSpec, VMSpec
from hypervisors.vmware import VMwareHypervisor, vmsd, vmx

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "vmware"


@pytest.fixture
def vmw(simulated_tools: Path) -> VMwareHypervisor:
    return VMwareHypervisor(vm_root=simulated_tools / "vms")


def _base(tmp_path: Path) -> Path:
    raw = tmp_path / "base.raw"
    with raw.open("wb") as f:
        f.truncate(16 << 20)
    return raw


def _node_keys(path: Path) -> set[str]:
    """The per-snapshot key names of a .vmsd (``uid``, ``filename``, ``disk0.fileName``...), lower case."""
    keys = set()
    for key in vmx.read(path):
        head, _, rest = key.partition(".")
        if head.lower().startswith("snapshot") and head[8:].isdigit():
            keys.add(rest.lower())
    return keys


def test_real_vmsd_memory_from_filename_and_vmem_beside_it(tmp_path):
    folder = tmp_path / "test flo"
    folder.mkdir()
    shutil.copy(REAL / "test-flo.vmsd", folder / "test flo.vmsd")
    for n in (1, 2, 3, 4):
        (folder / f"test flo-Snapshot{n}.vmsn").write_bytes(b"checkpoint")
    (folder / "test flo-Snapshot3.vmem").write_bytes(b"memory")  # "third" was taken with the memory
    nodes, current = vmsd.read_tree(folder / "test flo.vmsd")
    assert current == "4" and [nodes[u].name for u in "1234"] == ["SNAPSHOT POST INSTALL", "SECOND", "third",
                                                                   "from cli"]
    assert [nodes[u].parent for u in "1234"] == [None, "1", "2", "3"]
    assert nodes["3"].checkpoint_file == "test flo-Snapshot3.vmsn" and nodes["3"].kind == "1"
    assert {u: nodes[u].memory_file for u in "1234"} == {"1": None, "2": None, "3": "test flo-Snapshot3.vmem",
                                                         "4": None}
    assert nodes["2"].disk_nodes == (("scsi0:0", "test flo_0-000001.vmdk"),)


def test_simulator_vmsd_reads_like_the_real_one(vmw, tmp_path):
    base = vmw.import_disk(_base(tmp_path), "raw", tmp_path / "base.vmdk").path
    vmw.define(VMSpec(name="sim", memory_mib=128, disks=(DiskSpec(base, "vmdk", label="system"),)))
    first = vmw.snapshot_create("sim", "one")
    second = vmw.snapshot_create("sim", "two")
    path = vmw.vmx_path("sim").with_suffix(".vmsd")
    assert _node_keys(path) <= _node_keys(REAL / "test-flo.vmsd")  # no key VMware does not write
    assert "vmstate" not in _node_keys(path)
    nodes, current = vmsd.read_tree(path)
    assert current == second and nodes[second].parent == first
    assert nodes[first].checkpoint_file and nodes[first].checkpoint_file.endswith(".vmsn")
    assert (path.parent / nodes[first].checkpoint_file).exists()
    assert nodes[first].memory_file is None  # the VM was off: no .vmem
    assert not any(s.has_memory for s in vmw.snapshot_list("sim"))


def test_real_vmx_keys_are_case_insensitive(tmp_path):
    values = vmx.read(REAL / "test-flo.vmx")
    assert values["memsize"] == "1024" and values.get("MEMSIZE") == "1024" and "memSize" in values
    assert values["scsi0:0.filename"] == "test flo_0-000004.vmdk"
    assert vmx.render(values).count("memSize") == 1  # the spelling found is the one written back
    values["MemSize"] = "2048"
    assert values["memsize"] == "2048" and list(values).count("memSize") == 1


def test_lowercase_checkpoint_key_reads_as_suspended(vmw, tmp_path):
    base = vmw.import_disk(_base(tmp_path), "raw", tmp_path / "base.vmdk").path
    vmw.define(VMSpec(name="low", memory_mib=128, disks=(DiskSpec(base, "vmdk", label="system"),)))
    path = vmw.vmx_path("low")
    (path.parent / "low.vmss").write_bytes(b"suspended memory")
    path.write_text(path.read_text() + 'checkpoint.vmstate = "low.vmss"\n')
    assert vmw.state("low") == VMState.SAVED
    vmw.discard_saved_state("low")
    assert vmw.state("low") == VMState.STOPPED and not (path.parent / "low.vmss").exists()


def test_every_bar_escape_is_decoded_and_written_back():
    text = 'annotation = "line one|0Aline two |22quoted|22 |7C bar |23 hash |C3|A9t|C3|A9"\n'
    values = vmx.parse(text)
    assert values["annotation"] == 'line one\nline two "quoted" | bar # hash été'
    assert vmx.parse(vmx.render(values))["annotation"] == values["annotation"]
    assert "|0A" in vmx.render(values) and "\n" not in vmx.render(values).split(" = ", 2)[-1].rstrip("\n")
