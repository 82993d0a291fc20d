"""VirtualBox as the real tools print and write it (tests/fixtures/real/virtualbox), and the simulator alike.

Each real sample and the simulator's output go through the same parser and must give the same answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hypervisors import qemu_img
from hypervisors.base import VMState
from hypervisors.spec import DiskSpec, NicSpec, PortForward, VMSpec
from hypervisors.virtualbox import VirtualBoxHypervisor, media
from hypervisors.virtualbox.diagnostics import vboxdrv_missing
from hypervisors.virtualbox.machinereadable import parse_info, parse_medium_info, parse_medium_list, parse_snapshot_tree
from hypervisors.virtualbox.mainapi import MainApiControl
from hypervisors.virtualbox.probe import probe_virtualbox
from hypervisors.virtualbox.states import main_api_states

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "virtualbox"
TESTS = Path(__file__).resolve().parents[2]

# VirtualBox.xidl, enum MachineState: 7.0 inserted AbortedSaved=5 after Aborted.
XIDL_7 = ["Null", "PoweredOff", "Saved", "Teleported", "Aborted", "AbortedSaved", "Running", "Paused", "Stuck",
          "Teleporting", "LiveSnapshotting", "Starting", "Stopping", "Saving", "Restoring", "TeleportingPausedVM",
          "TeleportingIn", "DeletingSnapshotOnline", "DeletingSnapshotPaused", "OnlineSnapshotting",
          "RestoringSnapshot", "DeletingSnapshot", "SettingUp", "Snapshotting"]
XIDL_6_1 = [name for name in XIDL_7 if name != "AbortedSaved"]


@pytest.fixture
def vbox(simulated_tools: Path) -> VirtualBoxHypervisor:
    return VirtualBoxHypervisor(machine_folder=simulated_tools / "machines", api="vboxmanage")


def _spec(name: str, disk: Path) -> VMSpec:
    return VMSpec(name=name, memory_mib=128, disks=(DiskSpec(disk, "vdi", label="system"),),
                  nics=(NicSpec(forwards=(PortForward(2222, 22),)),))


def _vdi(tmp_path: Path) -> Path:
    return qemu_img.create(tmp_path / "base.vdi", "vdi", 16 << 20)


def test_showvminfo_of_virtualbox_7_and_of_the_simulator_read_alike(vbox, tmp_path):
    real = parse_info((REAL / "showvminfo-7.0-vagrant.txt").read_text())
    assert real["name"] == "vagrant-test_default_1665781960041_56631" and real["memory"] == "1024"
    assert not any(key.startswith("Encryption") for key in real)  # the 7.0 non key=value line is skipped
    vbox.define(_spec("sim", _vdi(tmp_path)))
    raw = subprocess.run(["VBoxManage", "showvminfo", "sim", "--machinereadable"], capture_output=True, text=True,
                         check=True).stdout
    assert "Encryption:     disabled" in raw  # the simulator prints what 7.0 prints
    simulated = parse_info(raw)
    assert set(real) <= set(simulated) and not any(key.startswith("Encryption") for key in simulated)


def test_snapshot_list_of_packer_and_of_the_simulator_read_alike(vbox, tmp_path):
    snapshots, current = parse_snapshot_tree(parse_info((REAL / "snapshot-list-packer.txt").read_text()))
    by_id = {s.id: s for s in snapshots}
    assert len(snapshots) == 11 and current == "c857d1b8-4fd6-4044-9d2c-c6e465b3cdd4"
    assert by_id[current].parent_id == "5fc461ec-da7a-40a8-a168-03134d7cdf5c"  # Snapshot 1
    assert by_id["7b093686-2981-4ada-8b0f-4c03ae23cd1a"].parent_id == "85646c6a-fb86-4112-b15e-cab090670778"
    assert [s.name for s in snapshots if s.parent_id is None] == ["Imported"]

    vbox.define(_spec("snap", _vdi(tmp_path)))
    root = vbox.snapshot_create("snap", "Imported")
    child = vbox.snapshot_create("snap", "Snapshot 1")
    vbox.snapshot_restore("snap", root)
    other = vbox.snapshot_create("snap", "Snapshot 5")
    raw = subprocess.run(["VBoxManage", "snapshot", "snap", "list", "--machinereadable"], capture_output=True,
                         text=True, check=True).stdout
    simulated, sim_current = parse_snapshot_tree(parse_info(raw))
    assert {s.id: s.parent_id for s in simulated} == {root: None, child: root, other: root}
    assert sim_current == other


def test_multi_line_description_reads_back(vbox, tmp_path):
    vbox.define(_spec("desc", _vdi(tmp_path)))
    text = 'first line\nsecond "quoted" line\\ with a backslash\nSnapshotName="not a key"'
    subprocess.run(["VBoxManage", "modifyvm", "desc", "--description", text], check=True)
    settings = vbox.machine_settings("desc")
    assert settings["description"] == text
    assert settings["memory"] == "128" and "SnapshotName" not in settings


def test_natpf1_delete_deletes(vbox, tmp_path):
    vbox.define(_spec("nat", _vdi(tmp_path)))
    assert any(key.startswith("Forwarding(") for key in vbox.machine_settings("nat"))
    rule = next(v for k, v in vbox.machine_settings("nat").items() if k.startswith("Forwarding(")).split(",")[0]
    subprocess.run(["VBoxManage", "modifyvm", "nat", "--natpf1", "delete", rule], check=True)
    assert not any(key.startswith("Forwarding(") for key in vbox.machine_settings("nat"))
    again = subprocess.run(["VBoxManage", "modifyvm", "nat", "--natpf1", "delete", rule], capture_output=True,
                           text=True)
    assert again.returncode == 1 and "does not exist" in again.stderr


def test_vboxdrv_warning_on_stdout_is_seen(simulated_tools, monkeypatch):
    assert vboxdrv_missing((REAL / "vboxdrv-warning.txt").read_text())
    monkeypatch.setenv("VBOX_SIM_FAULT", "vboxdrv")
    shown = subprocess.run(["VBoxManage", "--version"], capture_output=True, text=True)
    assert shown.stdout.startswith("WARNING: The vboxdrv kernel module is not loaded") and not shown.stderr
    probe = probe_virtualbox(Path(shutil.which("VBoxManage") or "VBoxManage"))
    assert not probe.available and "vboxdrv" in probe.summary


@pytest.mark.parametrize(("enum", "running", "aborted_saved"), [(XIDL_6_1, 5, None), (XIDL_7, 6, 5)])
def test_machine_state_numbering_from_the_binding(enum, running, aborted_saved):
    constants = SimpleNamespace(**{f"MachineState_{name}": value for value, name in enumerate(enum)})
    table = main_api_states(constants)
    assert table[running] == "running" and table[running + 1] == "paused"
    assert table.get(5) == ("running" if aborted_saved is None else "aborted-saved")
    control = MainApiControl.__new__(MainApiControl)
    control.state_names = table
    control._machine = lambda name: SimpleNamespace(state=5)  # type: ignore[method-assign]
    assert control.state("vm") == (VMState.RUNNING if aborted_saved is None else VMState.SAVED)


@pytest.mark.parametrize(("version", "enum"), [("6.1.50r161033", XIDL_6_1), ("7.0.20r163906", XIDL_7)])
def test_simulated_binding_numbers_states_as_its_version(version, enum, tmp_path):
    code = "import json, vboxapi; print(json.dumps(vboxapi.MACHINE_STATE_VALUES))"
    env = {**os.environ, "VBOX_SIM_VERSION": version, "VBOX_SIM_HOME": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(TESTS / "simulators" / "pythonpath"), str(TESTS)])}
    values = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                       check=True).stdout)
    assert values == {name: value for value, name in enumerate(enum)}


def test_differencing_images_carry_the_base_format_name_and_read_as_unchanged(vbox, tmp_path):
    vbox.define(_spec("diff", _vdi(tmp_path)))
    top = vbox.disk_tops("diff")["system"]
    assert top.parent.name == "Snapshots" and top.suffix == ".vdi" and top.name.startswith("{")
    info = subprocess.run(["VBoxManage", "showmediuminfo", "disk", str(top)], capture_output=True, text=True,
                          check=True).stdout
    assert "Storage format: VDI" in info
    assert not vbox.top_has_data(top)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 7 0 64k", str(top)], check=True, capture_output=True)
    assert vbox.top_has_data(top)


def test_vdi_header_counts_allocated_blocks(tmp_path):
    image = qemu_img.create(tmp_path / "d.vdi", "vdi", 8 << 20)
    assert media.vdi_blocks_allocated(image) == 0 and not media.top_has_data(image)
    subprocess.run(["qemu-io", "-f", "vdi", "-c", "write -P 1 1M 4k", str(image)], check=True, capture_output=True)
    assert media.vdi_blocks_allocated(image) == 1 and media.top_has_data(image)
    (tmp_path / "junk.vdi").write_bytes(b"\0" * 1024)
    assert media.top_has_data(tmp_path / "junk.vdi")  # unreadable: assume changes


def test_medium_listings_of_virtualbox_and_of_the_simulator_read_alike(vbox, tmp_path):
    base = parse_medium_info((REAL / "showmediuminfo-base.txt").read_text())
    assert base["Parent UUID"] == "base" and base["Type"] == "normal (base)" and base["Storage format"] == "VDI"
    assert base["Child UUIDs"] == "e33c82fb-8f81-4f65-a001-d3bc18569009"  # the continuation line is no key
    (real_diff,) = parse_medium_list((REAL / "list-hdds-differencing.txt").read_text())
    assert real_diff["Type"] == "normal (differencing)"
    assert real_diff["Location"].endswith(f"Snapshots/{{{real_diff['UUID']}}}.vdi")

    disk = _vdi(tmp_path)
    vbox.define(_spec("media", disk))
    shown = parse_medium_info(subprocess.run(["VBoxManage", "showmediuminfo", "disk", str(disk)],
                                             capture_output=True, text=True, check=True).stdout)
    assert {k: shown[k] for k in ("Parent UUID", "Type", "Storage format")} == {
        "Parent UUID": "base", "Type": "multiattach (base)", "Storage format": "VDI"}
    listed = parse_medium_list(subprocess.run(["VBoxManage", "list", "hdds"], capture_output=True, text=True,
                                              check=True).stdout)
    (sim_diff,) = [m for m in listed if m["Parent UUID"] != "base"]
    assert set(real_diff) <= set(sim_diff) and sim_diff["Type"] == "normal (differencing)"
    assert sim_diff["Storage format"] == "VDI"
    assert sim_diff["Location"].endswith(f"Snapshots/{{{sim_diff['UUID']}}}.vdi")
