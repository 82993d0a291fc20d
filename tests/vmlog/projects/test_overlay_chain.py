"""Saving, restoring and removing states on a stopped VM's overlay chain (files only, no hypervisor)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chain_helpers import same_content, snapshot_raw, write_pattern

from hypervisors import qemu_img
from vmlog.errors import AlreadyExists, InvalidInput
from vmlog.projects import refs
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.repair import check_project
from vmlog.projects.store import ProjectFiles


def live(files: ProjectFiles) -> Path:
    return files.layers.path(files.load().live["system"])


def save(files: ProjectFiles, name: str | None) -> str:
    return OverlayChain(None).save(files, name=name, message=f"msg {name}", author="u@h", memory=False).id


def test_new_project_layout(project_files: ProjectFiles, ctx) -> None:
    project = project_files.load()
    assert project.current is None and project.vm_name.startswith(f"vmlog-{ctx.home.home_id}-")
    info = qemu_img.info(live(project_files), "qcow2")
    assert info["cluster-size"] <= 65536
    assert info["backing-filename-format"] == "raw"
    assert not os.path.isabs(info["backing-filename"])
    assert ctx.images.refs(project.roots["system"].image_sha256) == [f"project:{project.id}"]
    assert not OverlayChain(None).live_has_changes(project_files)


def test_save_freezes_live_layer_without_copying(project_files: ProjectFiles, tmp_path: Path) -> None:
    before = live(project_files)
    inode = before.stat().st_ino
    write_pattern(before, 0x22, 0)
    assert OverlayChain(None).live_has_changes(project_files)
    sid = save(project_files, "one")
    state = project_files.states()[sid]
    assert project_files.layers.path(state.layers["system"]).stat().st_ino == inode
    assert not OverlayChain(None).live_has_changes(project_files)
    assert project_files.load().current == sid
    with pytest.raises(AlreadyExists):
        save(project_files, "one")


def test_three_states_branch_and_restore(project_files: ProjectFiles, tmp_path: Path) -> None:
    chain = OverlayChain(None)
    expected: dict[str, Path] = {}
    for i, name in enumerate(["one", "two", "three"]):
        write_pattern(live(project_files), 0x30 + i, (i + 1) * 1024 * 1024)
        sid = save(project_files, name)
        expected[sid] = snapshot_raw(live(project_files), tmp_path / f"{name}.raw")
    states = project_files.states()
    first = refs.resolve(states, project_files.load().current, "one")
    chain.restore(project_files, first)
    assert same_content(live(project_files), expected[first.id])
    write_pattern(live(project_files), 0x77, 3 * 1024 * 1024)  # branch from "one"
    branch = save(project_files, "branch")
    expected[branch] = snapshot_raw(live(project_files), tmp_path / "branch.raw")
    states = project_files.states()
    assert states[branch].parent == first.id
    assert len(refs.children(states, first.id)) == 2
    for sid, reference in expected.items():
        chain.restore(project_files, states[sid])
        assert same_content(live(project_files), reference), states[sid].name
    assert check_project(project_files) == []


def test_remove_merges_into_single_child(project_files: ProjectFiles, tmp_path: Path) -> None:
    chain = OverlayChain(None)
    write_pattern(live(project_files), 0x41, 0)
    a = save(project_files, "a")
    write_pattern(live(project_files), 0x42, 65536)
    b = save(project_files, "b")
    write_pattern(live(project_files), 0x43, 131072)
    c = save(project_files, "c")
    ref_c = snapshot_raw(live(project_files), tmp_path / "c.raw")
    write_pattern(live(project_files), 0x44, 196608)  # unsaved work in the live layer
    ref_live = snapshot_raw(live(project_files), tmp_path / "live.raw")

    chain.remove(project_files, project_files.states()[b])  # middle state: merged into c
    states = project_files.states()
    assert b not in states and states[c].parent == a
    assert same_content(project_files.layers.path(states[c].layers["system"]), ref_c)
    assert same_content(live(project_files), ref_live)

    chain.remove(project_files, states[c])  # the current state: merged into the live layer
    assert project_files.load().current == a
    assert same_content(live(project_files), ref_live)
    assert check_project(project_files) == []


def test_remove_refuses_state_with_two_children(project_files: ProjectFiles) -> None:
    chain = OverlayChain(None)
    a = save(project_files, "a")
    save(project_files, "b")
    chain.restore(project_files, project_files.states()[a])
    save(project_files, "c")
    with pytest.raises(InvalidInput) as caught:
        chain.remove(project_files, project_files.states()[a])
    assert "2 children" in caught.value.message and caught.value.fix
    leaf = refs.resolve(project_files.states(), None, "b")
    chain.remove(project_files, leaf)
    assert "b" not in {s.name for s in project_files.states().values()}
    assert check_project(project_files) == []
