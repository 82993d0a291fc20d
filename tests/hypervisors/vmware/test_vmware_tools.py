"""VMware Tools behind the guest channel contract: real vmrun outputs, and the simulated Tools end to end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from simulators.sim_guest import install_agent

from hypervisors.base import Capability
from hypervisors.errors import InvalidState, OperationFailed, Unsupported, VMNotFound
from hypervisors.spec import DiskSpec, VMSpec
from hypervisors.vmware import VMwareHypervisor
from hypervisors.vmware.tools import VMwareTools, guest_exit_code

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "vmware"
USER, PASSWORD = "vmlog", "vmlog-password"


def test_real_vmrun_texts_read_as_vmrun_prints_them() -> None:
    assert guest_exit_code((REAL / "runprogram-nonzero.txt").read_text()) == 1
    assert guest_exit_code("") is None
    agent = VMwareTools(None, Path("/x/vm.vmx"), username=USER, password=PASSWORD)  # type: ignore[arg-type]
    error = agent._failure("run a command in", (REAL / "tools-not-running.txt").read_text(), 255)
    assert isinstance(error, OperationFailed) and "open-vm-tools" in (error.fix or "")


@pytest.fixture
def vmw(simulated_tools: Path) -> VMwareHypervisor:
    return VMwareHypervisor(vm_root=simulated_tools / "vms", guest_user=USER, guest_password=PASSWORD)


def _blank_vm(vmw: VMwareHypervisor, tmp_path: Path, name: str) -> Path:
    raw = tmp_path / f"{name}.raw"
    with raw.open("wb") as f:
        f.truncate(16 << 20)
    base = vmw.import_disk(raw, "raw", tmp_path / f"{name}.vmdk").path
    vmw.define(VMSpec(name=name, memory_mib=64, disks=(DiskSpec(base, "vmdk", label="system"),)))
    return vmw.vmx_path(name)


def test_simulated_tools_run_commands_and_move_files(vmw: VMwareHypervisor, tmp_path: Path) -> None:
    assert vmw.can(Capability.GUEST_AGENT)
    with pytest.raises(VMNotFound):
        vmw.guest_agent("nope")
    vmx_path = _blank_vm(vmw, tmp_path, "tools")
    agent = vmw.guest_agent("tools")
    assert agent.tools_state() == "unknown"  # type: ignore[attr-defined]
    with pytest.raises(InvalidState):
        agent.ping()  # powered off
    vmw.start("tools")
    try:
        with pytest.raises(OperationFailed) as caught:
            agent.exec(["true"])  # running, no Tools: vmrun's own words, and what fixes it
        assert "VMware Tools are not running" in caught.value.message and "open-vm-tools" in (caught.value.fix or "")
        install_agent(vmx_path.parent)
        agent.wait_ready(10)
        result = agent.shell("echo out; echo err >&2; exit 7")
        assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
        assert agent.exec(["/bin/echo", "two words", "it's"]).stdout == b"two words it's\n"
        assert agent.exec(["cat"], stdin=b"fed\n").stdout == b"fed\n"
        path = agent.check_shell("mktemp").strip()
        agent.write_file(path, b"\x00binary\xff", mode=0o640)
        assert agent.read_file(path) == b"\x00binary\xff"
        assert agent.file_exists(path) and not agent.file_exists(path + ".missing")  # type: ignore[attr-defined]
        assert [i.addresses for i in agent.network_interfaces()] == [("10.0.2.15/32",)]
        assert agent.osinfo().kernel
        leftovers = sorted((vmx_path.parent / ".sim-guest" / "tmp").iterdir())
        assert leftovers == [Path(path)]  # the stream files of every command were deleted
        with pytest.raises(Unsupported, match="crash-consistent"):
            agent.fsfreeze()
        with pytest.raises(OperationFailed, match="Invalid user name or password"):
            VMwareTools(vmw.tool, vmx_path, username=USER, password="wrong").exec(["true"])
        with pytest.raises(Unsupported, match="user"):
            VMwareTools(vmw.tool, vmx_path).exec(["true"])
    finally:
        vmw.poweroff("tools")
    with pytest.raises(InvalidState):
        agent.exec(["true"])


def test_the_simulator_prints_the_real_texts(vmw: VMwareHypervisor, tmp_path: Path) -> None:
    vmx_path = _blank_vm(vmw, tmp_path, "texts")
    vmw.start("texts")
    try:
        def vmrun(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(vmw.tool.path), "-T", "ws", "-gu", USER, "-gp", PASSWORD, *args],
                                  capture_output=True, text=True, check=False)

        no_tools = vmrun("runProgramInGuest", str(vmx_path), "/bin/true")
        assert no_tools.returncode == 255
        real = (REAL / "tools-not-running.txt").read_text()
        assert no_tools.stdout.split(": ", 1)[1].rsplit(": ", 1)[0] == real.split(": ", 1)[1].rsplit(": ", 1)[0]
        install_agent(vmx_path.parent)
        failing = vmrun("runProgramInGuest", str(vmx_path), "/bin/sh", "-c", "'exit 1'")
        assert (failing.returncode, failing.stdout) == (255, (REAL / "runprogram-nonzero.txt").read_text())
        assert vmrun("checkToolsState", str(vmx_path)).stdout == "running\n"
    finally:
        vmw.poweroff("texts")
