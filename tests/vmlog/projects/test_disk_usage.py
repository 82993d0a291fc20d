"""The usage cache: a listing's disk use and state count agree with the files, after every kind of change."""

from __future__ import annotations

import os
from pathlib import Path

from chain_helpers import write_pattern

from vmlog.app import projects
from vmlog.app import states as app_states
from vmlog.projects import disk_usage
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace


def tree_bytes(root: Path) -> int:
    """The full walk the cache must agree with."""
    return disk_usage.tree_allocated(str(root))


def _row(ctx: Workspace) -> projects.ProjectSummary:
    (row,) = projects.list_projects(ctx, with_vm_state=False)
    return row


def _check(ctx: Workspace, files: ProjectFiles) -> projects.ProjectSummary:
    count = len(files.states())  # first: reading may write the state index, one of the project's files
    row = _row(ctx)
    assert row.states == count
    assert row.disk_bytes == tree_bytes(files.root)
    return row


def test_usage_follows_saves_restores_removals_and_growth(ctx: Workspace, project_files: ProjectFiles) -> None:
    _check(ctx, project_files)
    first = app_states.save_state("alpha", "one", ctx=ctx)
    _check(ctx, project_files)
    live = project_files.layers.path(project_files.load().live["system"])
    write_pattern(live, 0x22, 0, 512 * 1024)  # the live layer grows while the cache stays put
    assert _check(ctx, project_files).states == 1
    app_states.save_state("alpha", "two", ctx=ctx)
    write_pattern(project_files.layers.path(project_files.load().live["system"]), 0x33, 0, 256 * 1024)
    _check(ctx, project_files)
    app_states.restore_state("alpha", first.id, ctx=ctx)
    _check(ctx, project_files)
    app_states.remove_state("alpha", "two", ctx=ctx)  # its child's layer is rebased: data copied into it
    _check(ctx, project_files)


def test_a_directory_unchanged_is_not_listed(ctx: Workspace, project_files: ProjectFiles, monkeypatch) -> None:
    app_states.save_state("alpha", "one", ctx=ctx)
    _row(ctx)
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(disk_usage.os, "listdir", lambda path: listed.append(str(path)) or real(path))
    _check(ctx, project_files)
    assert [path for path in listed if path.startswith(str(project_files.root))] == []


def test_a_state_without_its_record_is_not_counted(ctx: Workspace, project_files: ProjectFiles) -> None:
    app_states.save_state("alpha", "one", ctx=ctx)
    _row(ctx)
    debris = project_files.states_dir / "0123456789abcdef"
    debris.mkdir()
    (debris / "memory.bin").write_bytes(b"x" * 8192)
    row = _row(ctx)
    assert row.states == 1 and row.disk_bytes == tree_bytes(project_files.root)


def test_a_broken_cache_is_rebuilt(ctx: Workspace, project_files: ProjectFiles) -> None:
    app_states.save_state("alpha", "one", ctx=ctx)
    _row(ctx)
    cache = project_files.root / disk_usage.USAGE_FILE
    cache.write_text("{not json")
    _check(ctx, project_files)
    assert cache.read_text().startswith("{")


def test_json_rows_keep_their_fields(ctx: Workspace, project_files: ProjectFiles, base_image: Path) -> None:
    assert list(_row(ctx).to_dict()) == ["name", "current", "backend", "base", "states", "head", "disk_bytes", "vm"]


def test_an_index_rebuild_drops_the_cache(ctx: Workspace, project_files: ProjectFiles) -> None:
    app_states.save_state("alpha", "one", ctx=ctx)
    _row(ctx)
    cache = project_files.root / disk_usage.USAGE_FILE
    assert cache.is_file()
    project_files.index.rebuild()
    assert not cache.exists()
    _check(ctx, project_files)


def test_a_state_seen_before_its_record_counts_once_written(ctx: Workspace, project_files: ProjectFiles) -> None:
    state = app_states.save_state("alpha", "one", ctx=ctx)
    record = project_files.state_dir(state.id) / "state.json"
    text = record.read_text()
    record.unlink()  # as a listing between the directory and its record would see it
    _row(ctx)
    record.write_text(text)
    _check(ctx, project_files)
