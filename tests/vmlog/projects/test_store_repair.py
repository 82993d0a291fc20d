"""`vml doctor --repair` on the project store: each kind of debris a crash leaves, found and fixed."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from chain_helpers import same_content, snapshot_raw, write_pattern

from vmlog import fsutil
from vmlog.projects.model import State, new_id
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.repair import check_project, check_store
from vmlog.projects.store import ProjectFiles


def live(files: ProjectFiles) -> Path:
    return files.layers.path(files.load().live["system"])


def _half_save(files: ProjectFiles, *, with_new_overlay: bool) -> State:
    """The first steps of a save, as a kill -9 would leave them (no project.json commit)."""
    project = files.load()
    if with_new_overlay:
        files.layers.create_overlay(files.layers.new_name("system"), live(files), "qcow2")
    state = State(
        id=new_id(),
        parent=project.current,
        name="half",
        message="",
        author="u@h",
        created=time.time(),
        layers=dict(project.live),
        spec=project.spec,
    )
    files.write_state(state)
    return state


def test_clean_project_has_no_findings(project_files: ProjectFiles) -> None:
    assert check_project(project_files) == []


def test_interrupted_save_is_finished(project_files: ProjectFiles, tmp_path: Path) -> None:
    write_pattern(live(project_files), 0x51, 0)
    reference = snapshot_raw(live(project_files), tmp_path / "ref.raw")
    state = _half_save(project_files, with_new_overlay=True)
    findings = check_project(project_files)
    assert [f.repaired for f in findings] == [False] and "interrupted" in findings[0].problem
    check_project(project_files, repair=True)
    project = project_files.load()
    assert project.current == state.id and project.live["system"] != state.layers["system"]
    assert same_content(project_files.layers.path(state.layers["system"]), reference)
    assert check_project(project_files) == []


def test_interrupted_save_without_new_overlay_is_undone(project_files: ProjectFiles) -> None:
    state = _half_save(project_files, with_new_overlay=False)
    check_project(project_files, repair=True)
    assert state.id not in project_files.states()
    assert project_files.load().current is None
    assert check_project(project_files) == []


def test_debris_is_removed(project_files: ProjectFiles) -> None:
    OverlayChain(None).save(project_files, name="a", message="", author="u@h", memory=False)
    (project_files.states_dir / "0123456789abcdef").mkdir()  # state dir without state.json
    fsutil.temp_path_for(project_files.project_file).write_text("{")  # torn temp file
    orphan = project_files.layers.create_overlay("system-orphan.qcow2", live(project_files), "qcow2")
    findings = check_project(project_files, repair=True)
    assert len(findings) == 3 and all(f.repaired for f in findings)
    assert not orphan.exists() and not (project_files.states_dir / "0123456789abcdef").exists()
    assert check_project(project_files) == []


def test_missing_live_layer_is_recreated(project_files: ProjectFiles, tmp_path: Path) -> None:
    write_pattern(live(project_files), 0x61, 0)
    sid = OverlayChain(None).save(project_files, name="a", message="", author="u@h", memory=False).id
    reference = snapshot_raw(live(project_files), tmp_path / "a.raw")
    live(project_files).unlink()
    check_project(project_files, repair=True)
    assert project_files.load().current == sid
    assert same_content(live(project_files), reference)
    assert check_project(project_files) == []


def test_interrupted_merge_is_finished(project_files: ProjectFiles, tmp_path: Path) -> None:
    chain = OverlayChain(None)
    write_pattern(live(project_files), 0x71, 0)
    a = chain.save(project_files, name="a", message="", author="u@h", memory=False)
    write_pattern(live(project_files), 0x72, 65536)
    b = chain.save(project_files, name="b", message="", author="u@h", memory=False)
    write_pattern(live(project_files), 0x73, 131072)
    c = chain.save(project_files, name="c", message="", author="u@h", memory=False)
    ref_c = snapshot_raw(project_files.layers.path(c.layers["system"]), tmp_path / "c.raw")
    # rm b was killed after rebasing c's layer onto a, before c's state.json was rewritten
    project_files.layers.rebase(c.layers["system"], project_files.layers.path(a.layers["system"]), "qcow2")
    findings = check_project(project_files)
    assert any("interrupted removal" in f.problem for f in findings)
    check_project(project_files, repair=True)
    assert project_files.states()[c.id].parent == a.id
    assert check_project(project_files) == []
    # removing a, now b's only... a has two children (b and c): refused, nothing lost
    chain.remove(project_files, project_files.states()[b.id])
    assert same_content(project_files.layers.path(c.layers["system"]), ref_c)
    assert dataclasses.replace(project_files.states()[c.id]).parent == a.id


def test_half_built_project_dir_is_removed(project_files: ProjectFiles, ctx) -> None:
    staged = ctx.projects.staging("beta")
    (staged.root / "junk").write_text("x")
    report = check_store(ctx.projects, repair=True)
    assert report.ok and not staged.root.exists()
    assert ctx.projects.names() == ["alpha"]
