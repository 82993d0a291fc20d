"""Bounded chains: saves past the bound consolidate ancestors into checkpoints; every state keeps its bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_helpers import same_content, snapshot_raw, write_pattern

from hypervisors.base import VMState
from hypervisors.errors import Unsupported
from vmlog.app import projects
from vmlog.app import states as app_states
from vmlog.errors import InvalidInput
from vmlog.projects import checkpoints, qcow2_peek
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

BOUND = 6
SAVES = 40


@pytest.fixture(autouse=True)
def small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoints, "MAX_CHAIN_FILES", BOUND)
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_STACK", 2)


def _live(files: ProjectFiles) -> Path:
    return files.layers.path(files.load().live["system"])


def _save_many(files: ProjectFiles, driver: OverlayChain, tmp_path: Path, count: int) -> dict[str, Path]:
    """``count`` saves, each after a small guest-like write; state id -> raw copy of what it showed."""
    references: dict[str, Path] = {}
    for i in range(count):
        write_pattern(_live(files), 0x40 + i % 150, (i % 60) * 65536, 4096)
        state = driver.save(files, name=None, message=f"s{i}", author="me", memory=False)
        references[state.id] = snapshot_raw(files.layers.path(state.layers["system"]), tmp_path / f"ref-{i}.raw")
        assert len(checkpoints.chain_files(_live(files))) <= BOUND
    return references


def test_saves_past_the_bound_keep_every_state_byte_for_byte(project_files: ProjectFiles, tmp_path: Path) -> None:
    driver = OverlayChain(None)
    references = _save_many(project_files, driver, tmp_path, SAVES)
    assert driver.consolidations, "the chain was never consolidated"
    made = list((project_files.layers.dir / checkpoints.CHECKPOINT_DIR).iterdir())
    assert made and all(p.name.startswith("checkpoint-") for p in made)
    for state in project_files.states().values():  # a layer on a checkpoint: the checkpoint shows its parent's layer
        backing = project_files.layers.backing_name(state.layers["system"])
        parent = project_files.states().get(state.parent) if state.parent else None
        if backing and checkpoints.shown_layer(backing) is not None and parent is not None:
            assert checkpoints.shown_layer(backing) == parent.layers["system"]
    for state in project_files.states().values():
        layer = project_files.layers.path(state.layers["system"])
        assert same_content(layer, references[state.id]), state.label()
        assert len(checkpoints.chain_files(layer)) <= 2 * BOUND + checkpoints.MAX_CHECKPOINT_STACK
    ordered = sorted(project_files.states().values(), key=lambda s: s.created)
    for target in (ordered[0], ordered[len(ordered) // 2], ordered[-1]):
        driver.restore(project_files, target)
        assert same_content(_live(project_files), references[target.id])
        assert len(checkpoints.chain_files(_live(project_files))) <= BOUND


def test_removing_states_keeps_the_others_and_drops_unused_checkpoints(
    project_files: ProjectFiles, tmp_path: Path
) -> None:
    driver = OverlayChain(None)
    references = _save_many(project_files, driver, tmp_path, 24)
    ordered = sorted(project_files.states().values(), key=lambda s: s.created)
    for state in ordered[1:-1]:  # all but the first and the last, oldest first: each removal merges into a child
        driver.remove(project_files, project_files.states()[state.id])
    left = project_files.states()
    assert set(left) == {ordered[0].id, ordered[-1].id}
    for state in left.values():
        assert same_content(project_files.layers.path(state.layers["system"]), references[state.id])
    assert checkpoints.collect(project_files.layers.dir) == []  # remove already dropped the unused ones
    holders = [project_files.layers.path(s.layers["system"]) for s in left.values()] + [_live(project_files)]
    used = {p.name for top in holders for p in checkpoints.chain_files(top)}
    remaining = {p.name for p in (project_files.layers.dir / checkpoints.CHECKPOINT_DIR).glob("*.qcow2")}
    assert remaining <= used


def test_the_logbook_records_each_consolidation(ctx: Workspace, project_files: ProjectFiles) -> None:
    for i in range(BOUND + 2):
        write_pattern(_live(project_files), 0x20 + i, i * 65536, 4096)
        app_states.save_state("alpha", f"s{i}", ctx=ctx)
    messages = [e.message or "" for e in ctx.logbook.entries(project="alpha") if e.action == "state save"]
    assert any("checkpoint" in m for m in messages), messages


class RunningVM:
    """A backend whose VM runs: what a running save asks of it, recorded."""

    def __init__(self) -> None:
        self.swaps: list[dict[str, Path]] = []

    def exists(self, name: str) -> bool:
        return True

    def state(self, name: str) -> VMState:
        return VMState.RUNNING

    def require(self, capability: object, what: str) -> None:
        pass

    def can(self, capability: object) -> bool:
        return False  # no guest agent: the save is crash-consistent

    def swap_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        self.swaps.append(dict(new_tops))

    def repoint_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        raise Unsupported("this backend cannot move a running disk", backend="fake")


class RepointingVM(RunningVM):
    """A running VM whose disks can move onto shorter chains (as libvirt's shallow copy and pivot do)."""

    def __init__(self, files: ProjectFiles) -> None:
        super().__init__()
        self.files = files
        self.moves: list[dict[str, Path]] = []

    def repoint_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        for label, top in new_tops.items():
            current = self.files.layers.path(self.files.load().live[label])
            assert not self.files.layers.has_changes(current.name)  # nothing written since the save: nothing to copy
            assert checkpoints.shown_layer(qcow2_peek.read_header(top).backing_name or "") is not None
        self.moves.append(dict(new_tops))


def test_a_running_save_swaps_all_disks_at_once_and_stops_before_libvirt_would_refuse(
    ctx: Workspace, base_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects.new_project("two", str(base_image), scratch_size="4M", ctx=ctx)
    files = ctx.projects.get("two")
    monkeypatch.setattr(checkpoints, "RUNNING_CHAIN_LIMIT", 5)
    vm = RunningVM()
    driver = OverlayChain(vm)  # type: ignore[arg-type]
    saved = 0
    with pytest.raises(InvalidInput, match="scratch disk of 'two' is a chain of 5 files"):
        for _ in range(10):
            driver.save(files, name=None, message="", author="me", memory=False)
            saved += 1
    assert saved == 3  # root + 3 frozen layers + live = 5 files: one more would pass the limit
    assert len(vm.swaps) == 3 and all(set(swap) == {"system", "scratch"} for swap in vm.swaps)
    assert not driver.consolidations  # nothing rewrites the files a running QEMU holds


def test_running_saves_past_the_bound_move_the_disks_and_keep_every_state(
    ctx: Workspace, base_image: Path, tmp_path: Path
) -> None:
    projects.new_project("run", str(base_image), scratch_size="4M", ctx=ctx)
    files = ctx.projects.get("run")
    vm = RepointingVM(files)
    driver = OverlayChain(vm)  # type: ignore[arg-type]
    references: dict[str, Path] = {}
    for i in range(3 * BOUND):
        write_pattern(_live(files), 0x40 + i, (i % 60) * 65536, 4096)
        state = driver.save(files, name=None, message=f"s{i}", author="me", memory=False)
        references[state.id] = snapshot_raw(files.layers.path(state.layers["system"]), tmp_path / f"ref-{i}.raw")
        for label, layer in files.load().live.items():
            assert len(checkpoints.chain_files(files.layers.path(layer))) < BOUND, label
    assert vm.moves and all(set(move) <= {"system", "scratch"} for move in vm.moves)
    assert driver.consolidations and all(c.files_after < BOUND for c in driver.consolidations)
    for state_id, reference in references.items():  # no state's bytes changed
        layer = files.layers.path(files.states()[state_id].layers["system"])
        assert same_content(layer, reference), state_id
    live_names = set(files.load().live.values())
    assert all(files.layers.path(name).is_file() for name in live_names)
