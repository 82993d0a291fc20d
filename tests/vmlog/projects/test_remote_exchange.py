"""Export and import of a remote project's states: layers come down sparse for the writer, go up read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_helpers import write_pattern
from test_remote_layers import DirectoryHost, host  # noqa: F401 - the fixture

from hypervisors import qemu_img
from hypervisors.libvirt import connection
from vmlog.app import exchange, projects
from vmlog.app import states as app_states
from vmlog.workspace import Workspace


def _state_layer(ctx: Workspace, project: str, name: str) -> Path:
    files = ctx.projects.get(project)
    state = next(s for s in files.states().values() if s.name == name)
    return files.layers.path(state.layers["system"])


def test_a_remote_state_exports_and_imports_into_a_remote_and_a_local_project(
    ctx: Workspace, base_image: Path, host: DirectoryHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    projects.new_project("far", str(base_image), ctx=ctx)
    live = host.dir / ctx.projects.get("far").load().live["system"]
    write_pattern(live, 0x22, 64 * 1024, 128 * 1024)
    app_states.save_state("far", "s1", ctx=ctx)
    write_pattern(host.dir / ctx.projects.get("far").load().live["system"], 0x33, 2 * 1024 * 1024, 64 * 1024)
    app_states.save_state("far", "s2", ctx=ctx)

    full = exchange.export_state("far", "s1", tmp_path, ctx=ctx)
    incremental = exchange.export_state("far", "s2", tmp_path, since="s1", ctx=ctx)
    assert not any((ctx.projects.get("far").root / "layers").glob("*"))  # nothing written beside the records

    uploads = len(host.uploads)
    first = exchange.import_state(full.path, project="copy", trust=True, ctx=ctx)  # a new project on the host
    second = exchange.import_state(incremental.path, project="copy", trust=True, ctx=ctx)
    assert first.new_project and not second.new_project
    copy = ctx.projects.get("copy").load()
    assert copy.remote and len(host.uploads) > uploads
    assert f"base-{copy.base['sha256']}.raw" in host.uploads[:1]  # the base went once, for both projects
    for name in ("s1", "s2"):
        assert qemu_img.compare(_state_layer(ctx, "copy", name), "qcow2", _state_layer(ctx, "far", name), "qcow2")
    assert host.backing_path(_state_layer(ctx, "copy", "s2").name) == str(_state_layer(ctx, "copy", "s1"))
    app_states.restore_state("copy", "s2", discard=True, ctx=ctx)

    monkeypatch.setattr(connection, "is_remote", lambda uri: False)  # now a project of this machine
    here = exchange.import_state(full.path, project="near", trust=True, ctx=ctx)
    near = ctx.projects.get("near")
    assert not near.load().remote and near.layers.path(near.states()[here.state_id].layers["system"]).is_file()
    assert qemu_img.compare(_state_layer(ctx, "near", "s1"), "qcow2", _state_layer(ctx, "far", "s1"), "qcow2")
    monkeypatch.undo()
    projects.remove_project("near", ctx=ctx)
