"""``vml switch`` on libvirt's test driver: it suspends whichever project VM runs, not only the current one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypervisors.base import VMState
from vmlog.app import projects, running
from vmlog.projects.backends import open_backend, vm_state
from vmlog.workspace import Workspace


@pytest.fixture
def ctx(vmlog_home: Path, tmp_path: Path) -> Workspace:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    for name in ("alpha", "beta", "gamma"):
        projects.new_project(name, str(base), ctx=ctx)
    return ctx


def _state(ctx: Workspace, name: str) -> VMState:
    project = ctx.projects.get(name).load()
    with open_backend(project) as backend:
        return vm_state(backend, project.vm_name)


def test_switch_suspends_the_vm_that_runs_not_the_one_the_pointer_names(ctx: Workspace) -> None:
    running.up("alpha", ctx=ctx)
    running.up("beta", ctx=ctx)
    running.down("beta", mode="poweroff", ctx=ctx)  # the current pointer now names beta, which is off
    assert running.running_projects(ctx) == ["alpha"]
    result = running.switch("beta", ctx=ctx)
    assert result.left == ["alpha"] and result.source == "alpha" and result.suspended
    assert _state(ctx, "alpha") == VMState.SAVED
    assert _state(ctx, "beta") == VMState.RUNNING
    assert running.running_projects(ctx) == ["beta"]


def test_switch_suspends_every_other_running_vm(ctx: Workspace) -> None:
    running.up("alpha", ctx=ctx)
    running.up("beta", ctx=ctx)
    result = running.switch("gamma", ctx=ctx)
    assert sorted(result.left) == ["alpha", "beta"]
    assert result.to_dict()["suspended_projects"] == result.left
    assert running.running_projects(ctx) == ["gamma"]
    again = running.switch("alpha", ctx=ctx)
    assert again.left == ["gamma"] and again.target_was == VMState.SAVED
    assert running.running_projects(ctx) == ["alpha"]
