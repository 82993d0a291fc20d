"""States of a real VM (libvirt, QEMU, the test appliance): what the guest sees after save/restore/switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors.base import VMState
from vmlog.app import logbook, projects, running
from vmlog.app import states as app_states
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 240.0


@pytest.fixture
def vm_ctx(vmlog_home: Path) -> Iterator[Workspace]:
    ctx = Workspace.default()
    yield ctx
    for name in ctx.projects.names():  # never leak a libvirt domain, even when a test fails
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass


def _project(ctx: Workspace, name: str, image: Path) -> str:
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except Exception as exc:  # no libvirt: these tests cannot run
        pytest.skip(f"libvirt is not usable here: {exc}")
    projects.new_project(name, str(image), memory_mib=256, ctx=ctx)
    return name


def _guest(ctx: Workspace, name: str) -> GuestChannel:
    spec = ctx.projects.get(name).load().spec
    channel = GuestChannel(Path(spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def _files(guest: GuestChannel) -> list[str]:
    return sorted(guest.check_output("mkdir -p /data/t; ls /data/t").split())


def _write(guest: GuestChannel, name: str) -> None:
    guest.check_output(f"mkdir -p /data/t; echo {name}-content > /data/t/{name}; sync")


def _vm(ctx: Workspace, name: str) -> VMState | None:
    return running.status(name, ctx=ctx).vm.state


def test_three_states_branch_and_restore_each(vm_ctx: Workspace, test_appliance_image: Path) -> None:
    name = _project(vm_ctx, "tree", test_appliance_image)
    running.up(name, ctx=vm_ctx)
    expected: dict[str, list[str]] = {}
    with _guest(vm_ctx, name) as guest:
        for i in (1, 2, 3):
            _write(guest, f"f{i}")
            state = app_states.save_state(name, f"s{i}", message=f"after f{i}", ctx=vm_ctx)  # while running
            expected[state.id] = [f"f{j}" for j in range(1, i + 1)]
        _write(guest, "unsaved")
    running.down(name, mode="poweroff", ctx=vm_ctx)

    result = app_states.restore_state(name, "s1", ctx=vm_ctx)
    assert result.autosaved, "the unsaved file must have been auto-saved, not lost"
    expected[result.autosaved] = ["f1", "f2", "f3", "unsaved"]
    running.up(name, ctx=vm_ctx)
    with _guest(vm_ctx, name) as guest:
        assert _files(guest) == ["f1"]
        _write(guest, "branch")
        branch = app_states.save_state(name, "b1", ctx=vm_ctx)
        expected[branch.id] = ["branch", "f1"]
    running.down(name, mode="poweroff", ctx=vm_ctx)

    project, states = app_states.states(name, ctx=vm_ctx)
    s1 = next(s for s in states.values() if s.name == "s1")
    assert states[branch.id].parent == s1.id and len([s for s in states.values() if s.parent == s1.id]) == 2
    assert "|/" in "\n".join(app_states.state_tree(name, ctx=vm_ctx))

    for state_id, files in expected.items():
        app_states.restore_state(name, state_id, discard=True, ctx=vm_ctx)
        running.up(name, ctx=vm_ctx)
        with _guest(vm_ctx, name) as guest:
            assert _files(guest) == files, states[state_id].name or state_id
        running.down(name, mode="poweroff", ctx=vm_ctx)

    actions = [
        (e.action, e.outcome) for e in logbook.history(name, ctx=vm_ctx) if e.kind == "operation"
    ]
    assert ("state save", "ok") in actions and ("state restore", "ok") in actions and ("up", "ok") in actions
    assert all(outcome == "ok" for _action, outcome in actions)


def test_state_with_memory_resumes_where_it_was(vm_ctx: Workspace, test_appliance_image: Path) -> None:
    name = _project(vm_ctx, "mem", test_appliance_image)
    running.up(name, ctx=vm_ctx)
    with _guest(vm_ctx, name) as guest:
        guest.check_output("echo ram-value-1 > /tmp/ram")
    state = app_states.save_state(name, "with-ram", memory=True, ctx=vm_ctx)
    assert state.memory and _vm(vm_ctx, name) == VMState.RUNNING
    with _guest(vm_ctx, name) as guest:
        assert guest.check_output("cat /tmp/ram").strip() == "ram-value-1"
        guest.check_output("echo ram-value-2 > /tmp/ram")
    result = app_states.restore_state(name, "with-ram", stop=True, ctx=vm_ctx)
    assert result.running and result.autosaved
    with _guest(vm_ctx, name) as guest:
        assert guest.check_output("cat /tmp/ram").strip() == "ram-value-1"
    # the auto-saved state kept the newer memory too
    app_states.restore_state(name, result.autosaved, discard=True, ctx=vm_ctx)
    with _guest(vm_ctx, name) as guest:
        assert guest.check_output("cat /tmp/ram").strip() == "ram-value-2"


def test_switch_keeps_each_guest_memory(vm_ctx: Workspace, test_appliance_image: Path) -> None:
    a = _project(vm_ctx, "ana", test_appliance_image)
    b = _project(vm_ctx, "bob", test_appliance_image)
    running.up(a, ctx=vm_ctx)
    with _guest(vm_ctx, a) as guest:
        guest.check_output("echo alpha-$$ > /tmp/ram")
        value_a = guest.check_output("cat /tmp/ram").strip()
    result = running.switch(b, ctx=vm_ctx)
    assert result.suspended and result.source == a
    assert _vm(vm_ctx, a) == VMState.SAVED
    with _guest(vm_ctx, b) as guest:
        guest.check_output("echo bravo-$$ > /tmp/ram")
        value_b = guest.check_output("cat /tmp/ram").strip()
    running.switch(a, ctx=vm_ctx)
    assert _vm(vm_ctx, b) == VMState.SAVED
    with _guest(vm_ctx, a) as guest:
        assert guest.check_output("cat /tmp/ram").strip() == value_a
    running.switch(b, ctx=vm_ctx)
    with _guest(vm_ctx, b) as guest:
        assert guest.check_output("cat /tmp/ram").strip() == value_b
    switches = [e for e in logbook.history(b, ctx=vm_ctx) if e.kind == "operation" and e.action == "switch"]
    assert switches and all(e.outcome == "ok" for e in switches)
