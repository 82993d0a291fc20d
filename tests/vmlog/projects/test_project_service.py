"""The project service without booting VMs: names, current project, locks, logbook rows, rename, rm."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from vmlog import locking
from vmlog.app import logbook, projects, running, states
from vmlog.errors import AlreadyExists, Busy, InvalidInput, NotFound
from vmlog.projects.store import ProjectFiles


def _hold_lock(locks: Path, ready, release) -> None:  # runs in a child process
    with locking.project_lock(locks, "alpha", "state save"):
        ready.set()
        release.wait(30)


def test_busy_while_another_process_changes_the_project(project_files: ProjectFiles, ctx) -> None:
    mp = multiprocessing.get_context("fork")
    ready, release = mp.Event(), mp.Event()
    child = mp.Process(target=_hold_lock, args=(ctx.home.locks, ready, release))
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(Busy) as caught:
            states.save_state("alpha", "x", ctx=ctx)
        assert "state save" in caught.value.message and str(child.pid) in caught.value.message
        with pytest.raises(Busy):
            states.restore_state("alpha", "HEAD", ctx=ctx)
        # read-only calls never lock
        assert states.state_tree("alpha", ctx=ctx)
        assert running.status("alpha", ctx=ctx).busy == f"'state save' (pid {child.pid})"
    finally:
        release.set()
        child.join(30)
    assert project_files.states() == {}


def test_new_project_is_current_and_logged(project_files: ProjectFiles, ctx) -> None:
    assert projects.resolve_project(None, ctx) == "alpha"
    (row,) = [e for e in logbook.history("alpha", ctx=ctx)]
    assert row.action == "project new" and row.outcome == "ok"
    with pytest.raises(AlreadyExists):
        projects.new_project("alpha", "whatever", ctx=ctx)
    with pytest.raises(InvalidInput):
        projects.new_project("../evil", "whatever", ctx=ctx)
    failed = [e for e in logbook.history("alpha", ctx=ctx) if e.kind == "operation" and e.outcome == "failed"]
    assert len(failed) == 1 and "exists" in (failed[0].message or "")


def test_listing_and_notes(project_files: ProjectFiles, ctx) -> None:
    (row,) = projects.list_projects(ctx, with_vm_state=False)
    assert row.name == "alpha" and row.current and row.states == 0 and row.disk_bytes > 0 and row.vm is None
    note = logbook.add_note("first look", ctx=ctx)
    assert note.project == "alpha" and note.state_id is None
    assert [h.kind for h in logbook.history("alpha", ctx=ctx)] == ["operation", "note"]
    with pytest.raises(NotFound):
        states.show_state("alpha", "HEAD", ctx=ctx)


def test_remove_project_releases_base_image(project_files: ProjectFiles, ctx) -> None:
    project = project_files.load()
    sha = project.roots["system"].image_sha256
    assert ctx.images.refs(sha)
    projects.remove_project("alpha", ctx=ctx)
    assert ctx.images.refs(sha) == [] and ctx.projects.names() == []
    assert not project_files.root.exists()
    with pytest.raises(NotFound):
        projects.resolve_project(None, ctx)


def test_layer_sizes_follow_what_each_state_changed(project_files: ProjectFiles, ctx) -> None:
    from chain_helpers import write_pattern

    def live() -> Path:
        project = project_files.load()
        return project_files.layers.path(project.live["system"])

    small = states.save_state("alpha", "small", ctx=ctx)  # nothing written: an empty layer
    write_pattern(live(), 0x42, 0, 1 << 20)
    big = states.save_state("alpha", "big", ctx=ctx)
    sizes = states.layer_sizes("alpha", ctx=ctx)
    assert set(sizes) == {small.id, big.id}
    assert sizes[big.id] >= (1 << 20) > sizes[small.id]
