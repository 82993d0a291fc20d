"""States of a VirtualBox or VMware project whose VM boots for real (the simulators run it under QEMU/TCG).

What the guest sees after live saves, restores (with the snapshot's memory where the hypervisor kept
it), a branch and a removal: files written through the test appliance's agent channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors.base import VMState
from vmlog.app import doctor, projects, running
from vmlog.app import states as app_states
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 240.0


@pytest.fixture
def vm_ctx(vmlog_home: Path, simulated_tools: Path) -> Iterator[Workspace]:  # noqa: F811
    ctx = Workspace.default()
    yield ctx
    for name in ctx.projects.names():
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass


def _guest(ctx: Workspace, name: str) -> GuestChannel:
    spec = ctx.projects.get(name).load().spec
    channel = GuestChannel(Path(spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def _files(guest: GuestChannel) -> list[str]:
    return sorted(guest.check_output("mkdir -p /data/t; ls /data/t").split())


def _write(guest: GuestChannel, name: str) -> None:
    guest.check_output(f"mkdir -p /data/t; echo {name}-content > /data/t/{name}; sync")


def _vm(ctx: Workspace, name: str) -> str:
    return running.status(name, ctx=ctx)["vm"]


@pytest.mark.parametrize("backend", ["virtualbox", "vmware"])
def test_live_saves_restore_branch_remove(
    backend: str, vm_ctx: Workspace, test_appliance_image: Path, simulated_tools: Path  # noqa: F811
) -> None:
    options = (
        {"machine_folder": str(simulated_tools / "machines")}
        if backend == "virtualbox"
        else {"vm_root": str(simulated_tools / "vms")}
    )
    projects.new_project("tree", str(test_appliance_image), backend=backend, backend_options=options,
                        memory_mib=256, ctx=vm_ctx)
    running.up("tree", ctx=vm_ctx)
    expected: dict[str, list[str]] = {}
    with _guest(vm_ctx, "tree") as guest:
        for i in (1, 2):
            _write(guest, f"f{i}")
            state = app_states.save_state("tree", f"s{i}", ctx=vm_ctx)  # a live snapshot of the running VM
            expected[state.id] = [f"f{j}" for j in range(1, i + 1)]
            assert _vm(vm_ctx, "tree") == VMState.RUNNING.value
        _write(guest, "unsaved")
    running.down("tree", mode="poweroff", ctx=vm_ctx)

    result = app_states.restore_state("tree", "s1", ctx=vm_ctx)
    assert result["autosaved"], "the unsaved file must have been auto-saved, not lost"
    expected[result["autosaved"]] = ["f1", "f2", "unsaved"]
    running.up("tree", ctx=vm_ctx)  # resumes the memory the snapshot kept (or boots)
    with _guest(vm_ctx, "tree") as guest:
        assert _files(guest) == ["f1"]
        _write(guest, "branch")
        branch = app_states.save_state("tree", "b1", ctx=vm_ctx)
        expected[branch.id] = ["branch", "f1"]
    running.down("tree", mode="poweroff", ctx=vm_ctx)

    _project, states = app_states.states("tree", ctx=vm_ctx)
    s1 = next(s for s in states.values() if s.name == "s1")
    assert states[branch.id].parent == s1.id
    for state_id, files in expected.items():
        app_states.restore_state("tree", state_id, discard=True, ctx=vm_ctx)
        running.up("tree", ctx=vm_ctx)
        with _guest(vm_ctx, "tree") as guest:
            assert _files(guest) == files, states[state_id].label()
        running.down("tree", mode="poweroff", ctx=vm_ctx)

    app_states.remove_state("tree", result["autosaved"], ctx=vm_ctx)
    app_states.remove_state("tree", "s2", ctx=vm_ctx)  # now a leaf
    assert {s.name for s in app_states.states("tree", ctx=vm_ctx)[1].values()} == {"s1", "b1"}
    app_states.restore_state("tree", "b1", discard=True, ctx=vm_ctx)
    running.up("tree", ctx=vm_ctx)
    with _guest(vm_ctx, "tree") as guest:
        assert _files(guest) == ["branch", "f1"]
    running.down("tree", mode="poweroff", ctx=vm_ctx)
    assert doctor.check_projects(ctx=vm_ctx).findings == []
