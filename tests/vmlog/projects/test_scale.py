"""Thousands of states: no recursion, one index file read per listing, overlays made without opening the chain."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from chain_helpers import write_pattern

from vmlog.app import states as app_states
from vmlog.projects import qcow2_peek, refs
from vmlog.projects.model import State
from vmlog.projects.store import STATE_FILE, ProjectFiles
from vmlog.workspace import Workspace

LINE = 5000


def _write_line(files: ProjectFiles, count: int) -> list[str]:
    """``count`` state records in one line, written straight to disk (no layers: the listings never open them)."""
    project = files.load()
    parent = None
    ids = []
    for i in range(count):
        state = State(
            id=f"{i:016x}", parent=parent, name=f"s{i}" if i % 100 == 0 else None, message="",
            author="me", created=1_700_000_000.0 + i, layers={"system": "system-x.qcow2"}, spec={},
        )
        directory = files.state_dir(state.id)
        directory.mkdir(parents=True)
        (directory / STATE_FILE).write_text(json.dumps(state.to_dict()))
        parent = state.id
        ids.append(state.id)
    project.current = parent
    files.write(project)
    return ids


def test_tree_and_list_of_a_line_of_5000_states(ctx: Workspace, project_files: ProjectFiles) -> None:
    ids = _write_line(project_files, LINE)
    lines = app_states.state_tree("alpha", ctx=ctx)
    assert len(lines) == LINE
    assert lines[0].startswith("@ " + ids[-1][:8]) and lines[-1].startswith("* " + ids[0][:8])
    _project, listed = app_states.states("alpha", ctx=ctx)
    assert len(listed) == LINE
    assert refs.resolve(listed, ids[-1], f"HEAD~{LINE - 1}").id == ids[0]
    assert refs.ancestors(listed, ids[-1])[-1] == ids[0]


def test_a_save_appends_one_line_to_the_index(project_files: ProjectFiles) -> None:
    _write_line(project_files, 50)
    project_files.states()
    before = project_files.index.path.read_text().splitlines()
    extra = State.from_dict({**project_files.states()[f"{49:016x}"].to_dict(), "id": "f" * 16, "parent": f"{49:016x}"})
    project_files.write_state(extra)
    after = project_files.index.path.read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert extra.id in project_files.states()


def test_listings_read_the_index_not_every_record(
    ctx: Workspace, project_files: ProjectFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _write_line(project_files, 300)
    assert len(project_files.states()) == 300  # builds the index
    assert project_files.index.path.is_file()

    def no_scan() -> dict[str, State]:
        raise AssertionError("read every state.json although the index is current")

    monkeypatch.setattr(project_files.index, "scan", no_scan)
    assert len(app_states.state_tree("alpha", ctx=ctx)) == 300
    fresh = ctx.projects.get("alpha")
    monkeypatch.setattr(fresh.index, "scan", no_scan)
    assert set(fresh.states()) == set(ids)


def test_the_index_follows_every_change_and_rebuilds_when_stale(project_files: ProjectFiles) -> None:
    ids = _write_line(project_files, 3)
    files = project_files
    assert set(files.states()) == set(ids)
    renamed = State.from_dict({**files.states()[ids[1]].to_dict(), "name": "renamed"})
    files.rewrite_state(renamed)
    assert files.states()[ids[1]].name == "renamed"
    assert State.from_dict(json.loads((files.state_dir(ids[1]) / STATE_FILE).read_text())).name == "renamed"
    files.delete_state(ids[2])
    assert set(files.states()) == set(ids[:2])
    extra = State.from_dict({**renamed.to_dict(), "id": "f" * 16, "name": None})
    files.write_state(extra)
    assert set(files.states()) == {*ids[:2], extra.id}
    # a record another program wrote: its directory changes the stamp, so the index is rebuilt
    other = State.from_dict({**extra.to_dict(), "id": "e" * 16})
    files.state_dir(other.id).mkdir()
    (files.state_dir(other.id) / STATE_FILE).write_text(json.dumps(other.to_dict()))
    assert other.id in files.states()
    # a change interrupted after it began (the stamp moved, no line appended): rebuilt from the records
    files.index.begin()
    (files.state_dir(ids[0]) / STATE_FILE).write_text(json.dumps({**renamed.to_dict(), "id": ids[0], "name": "x"}))
    assert files.states()[ids[0]].name == "x"
    assert set(files.states()) == {*ids[:2], extra.id, other.id}
    files.index.path.write_text("{not json")
    assert len(files.states()) == 4


def _qemu_info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)


def test_an_overlay_is_made_without_opening_the_chain(project_files: ProjectFiles, tmp_path: Path) -> None:
    layers = project_files.layers
    base = tmp_path / "gone.img"
    base.write_bytes(b"\0" * (3 * 1024 * 1024 + 512 * 7))  # a size no cluster rounding hides
    layers.create_overlay("lower.qcow2", base, "raw")
    base.unlink()  # the chain below is now broken: opening it would fail
    layers.create_overlay("upper.qcow2", layers.path("lower.qcow2"), "qcow2")
    info = _qemu_info(layers.path("upper.qcow2"))
    assert info["backing-filename"] == "lower.qcow2"
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 3 * 1024 * 1024 + 512 * 7
    assert info["cluster-size"] == 65536
    header = qcow2_peek.read_header(layers.path("upper.qcow2"))
    assert header.backing_name == "lower.qcow2" and header.virtual_size == info["virtual-size"]


def test_changes_are_read_from_the_layer_itself(project_files: ProjectFiles, tmp_path: Path) -> None:
    layers = project_files.layers
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M"], check=True)
    write_pattern(base, 0x22, 0)
    layers.create_overlay("top.qcow2", base, "qcow2")
    assert not layers.has_changes("top.qcow2")
    write_pattern(layers.path("top.qcow2"), 0x33, 5 * 1024 * 1024, 4096)
    assert layers.has_changes("top.qcow2")
    layers.create_overlay("zeroed.qcow2", base, "qcow2")
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -z 0 65536", str(layers.path("zeroed.qcow2"))],
        check=True, capture_output=True,
    )
    assert layers.has_changes("zeroed.qcow2")  # zeros over the base's data are a change
