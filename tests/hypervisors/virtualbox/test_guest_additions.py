"""Guest Additions behind the guest channel contract: real VBoxManage outputs, and the simulated additions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from simulators.sim_guest import install_agent

from hypervisors.base import Capability
from hypervisors.errors import InvalidState, OperationFailed, OperationTimeout, Unsupported
from hypervisors.spec import DiskSpec, VMSpec
from hypervisors.virtualbox import VirtualBoxHypervisor
from hypervisors.virtualbox.guest_additions import GuestAdditions, guest_exit_code, mac_text, parse_property

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "virtualbox"
USER, PASSWORD = "vmlog", "vmlog-password"


def test_guest_properties_read_as_vboxmanage_prints_them() -> None:
    assert parse_property((REAL / "guestproperty-get-version.txt").read_text()) == "4.2.10"
    assert parse_property("No value set!\n") is None  # VBoxManageGuestProp.cpp for an absent property
    enumerated = (REAL / "guestproperty-enumerate.txt").read_text()
    mac = next(line.split("'")[1] for line in enumerated.splitlines() if "/Net/0/MAC" in line)
    assert mac_text(mac) == "08:00:27:67:e8:b0"


def test_run_exit_codes_map_back_to_the_guest_programs() -> None:
    """gctlRunCalculateExitCode: guest 0 -> 0, 1..93 -> 33..125, 94 and up -> 126, a signal -> 18."""
    assert guest_exit_code(0) == 0
    assert guest_exit_code(33) == 1
    assert guest_exit_code(125) == 93
    assert guest_exit_code(126) == 126
    assert guest_exit_code(18) == 128
    assert guest_exit_code(1) is None and guest_exit_code(2) is None  # VBoxManage's own failure


def test_the_real_not_ready_error_says_to_install_the_additions(tmp_path: Path) -> None:
    agent = GuestAdditions(None, "vm", username=USER, password=PASSWORD)  # type: ignore[arg-type]
    error = agent._failure("run a command in", (REAL / "guestcontrol-not-ready.txt").read_text(), 1)
    assert isinstance(error, OperationFailed) and "Guest Additions" in (error.fix or "")
    assert "not ready" in error.message


@pytest.fixture
def vbox(simulated_tools: Path) -> VirtualBoxHypervisor:
    return VirtualBoxHypervisor(machine_folder=simulated_tools / "machines", api="vboxmanage",
                                guest_user=USER, guest_password=PASSWORD)


def _blank_vm(vbox: VirtualBoxHypervisor, tmp_path: Path, name: str) -> Path:
    raw = tmp_path / f"{name}.raw"
    with raw.open("wb") as f:
        f.truncate(16 << 20)
    disk = vbox.import_disk(raw, "raw", tmp_path / f"{name}.vdi").path
    vbox.define(VMSpec(name=name, memory_mib=64, disks=(DiskSpec(disk, "vdi", label="system"),)))
    assert vbox.machine_folder is not None
    return vbox.machine_folder / name


def test_simulated_additions_run_commands_and_move_files(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    assert vbox.can(Capability.GUEST_AGENT)
    folder = _blank_vm(vbox, tmp_path, "ga")
    agent = vbox.guest_agent("ga")
    with pytest.raises(InvalidState):
        agent.ping()  # powered off
    vbox.start("ga")
    try:
        with pytest.raises(OperationFailed) as caught:
            agent.exec(["true"])  # running, no additions: VirtualBox's own words, and what fixes it
        assert "not ready" in caught.value.message and "Guest Additions" in (caught.value.fix or "")
        install_agent(folder)
        agent.wait_ready(10)
        assert agent.info().version.startswith(("6.", "7."))
        result = agent.shell("echo out; echo err >&2; exit 7")
        assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
        assert agent.exec(["/bin/sh", "-c", "exit 100"]).exit_code == 126  # VBoxManage cannot say more than 94+
        assert agent.exec(["cat"], stdin=b"fed\n").stdout == b"fed\n"
        with pytest.raises(OperationTimeout):
            agent.exec(["sleep", "30"], timeout=1)  # run --timeout kills it: VBoxManage exits 20
        path = agent.check_shell("mktemp").strip()
        agent.write_file(path, b"\x00binary\xff", mode=0o640)
        assert agent.read_file(path) == b"\x00binary\xff"
        assert agent.check_shell(f"stat -c %a {path}").strip() == "640"
        assert [i.addresses for i in agent.network_interfaces()] == [("10.0.2.15/24",)]
        assert agent.osinfo().kernel == os.uname().release
        with pytest.raises(Unsupported, match="crash-consistent"):
            agent.fsfreeze()
        bad = GuestAdditions(vbox.tool, "ga", username=USER, password="wrong")
        with pytest.raises(OperationFailed, match="not able to logon"):
            bad.exec(["true"])
        with pytest.raises(Unsupported, match="user"):
            GuestAdditions(vbox.tool, "ga").exec(["true"])
    finally:
        vbox.poweroff("ga")


def test_the_simulator_prints_the_real_not_ready_error(vbox: VirtualBoxHypervisor, tmp_path: Path) -> None:
    _blank_vm(vbox, tmp_path, "plain")
    vbox.start("plain")
    try:
        proc = subprocess.run([str(vbox.tool.path), "guestcontrol", "plain", "run", "--username", USER,
                               "--password", PASSWORD, "--", "/bin/true"], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 1
        assert proc.stderr == (REAL / "guestcontrol-not-ready.txt").read_text()
        get = subprocess.run([str(vbox.tool.path), "guestproperty", "get", "plain", "/VirtualBox/GuestAdd/Version"],
                             capture_output=True, text=True, check=False)
        assert get.stdout == "No value set!\n"
    finally:
        vbox.poweroff("plain")
