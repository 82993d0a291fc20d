"""Typed results: the JSON their to_dict() gives (what --json prints), an unknown VM state with its reason, undo."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypervisors import registry
from hypervisors.errors import BackendUnavailable
from vmlog.app import logbook, projects, running, states
from vmlog.app.types import VMState, VMStatus
from vmlog.workspace import Workspace


@pytest.fixture
def ctx(vmlog_home: Path, tmp_path: Path) -> Workspace:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * (4 << 20))
    ws = Workspace.default()
    projects.new_project("alpha", str(base), ctx=ws)
    return ws


def test_results_keep_the_json_keys(ctx: Workspace) -> None:
    (row,) = projects.list_projects(ctx)
    assert list(row.to_dict()) == ["name", "current", "backend", "base", "states", "head", "disk_bytes", "vm"]
    assert row.vm == VMStatus(VMState.STOPPED) and row.to_dict()["vm"] == "stopped" and row["name"] == "alpha"
    details = projects.show_project("alpha", ctx)
    data = details.to_dict()
    assert {"vm_state", "states", "path", "unsaved_changes", "name", "spec", "live"} <= set(data)
    assert data["vm_state"] == "stopped" and data["path"] == str(ctx.projects.get("alpha").root)
    now = running.status("alpha", ctx=ctx)
    assert list(now.to_dict()) == [
        "project", "vm_name", "backend", "vm", "state", "state_name", "unsaved_changes", "serial_log", "busy"
    ]
    saved = states.save_state("alpha", "s1", ctx=ctx)
    shown = states.show_state("alpha", "s1", ctx=ctx).to_dict()
    assert shown["id"] == saved.id and shown["current"] and shown["children"] == [] and shown["sender_logbook"] == []
    restored = states.restore_state("alpha", "s1", ctx=ctx)
    assert list(restored.to_dict()) == ["state", "autosaved", "releases", "running"]
    assert restored.state == saved.id and restored.autosaved is None and not restored.running
    note = logbook.add_note("checked", ctx=ctx)
    assert note.to_dict()["kind"] == "note" and note.state_id == saved.id
    assert [item.to_dict()["kind"] for item in logbook.history("alpha", ctx=ctx)][-1] == "note"


def test_a_backend_that_cannot_be_asked_gives_an_unknown_state_with_its_reason(
    ctx: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_args, **_options):
        raise BackendUnavailable("libvirtd is not running", fix="start it")

    monkeypatch.setattr(registry, "open_backend", down)  # where every listing opens its backends
    (row,) = projects.list_projects(ctx)
    assert row.vm == VMStatus(None, "libvirtd is not running") and row.vm.label == "unknown"
    assert row.to_dict()["vm"] == "unknown (libvirtd is not running)"  # as --json always wrote it
    assert running.status("alpha", ctx=ctx).vm.reason == "libvirtd is not running"


def test_a_rename_that_fails_half_way_goes_back(ctx: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(old: str, new: str) -> None:
        raise OSError("disk full")

    original = ctx.logbook.rename_project
    monkeypatch.setattr(ctx.logbook, "rename_project", broken)
    with pytest.raises(OSError):
        projects.rename_project("alpha", "beta", ctx=ctx)
    assert ctx.projects.names() == ["alpha"] and ctx.projects.get("alpha").load().name == "alpha"
    assert projects.resolve_project(None, ctx) == "alpha"
    monkeypatch.setattr(ctx.logbook, "rename_project", original)
    projects.rename_project("alpha", "beta", ctx=ctx)
    assert ctx.projects.names() == ["beta"] and projects.show_project("beta", ctx).project.vm_name.endswith("beta")
