"""A running save killed between moving a disk onto a checkpoint (block copy + pivot) and writing ``project.json``.

The VM then writes into a layer the project does not name; ``vml doctor --repair`` must take the
hypervisor's word for a running VM, make that layer the live one and keep every state's bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_helpers import same_content, snapshot_raw, write_pattern

from hypervisors.base import VMState
from vmlog.app import projects
from vmlog.projects import checkpoints, qcow2_peek
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.repair import check_project
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace


class Killed(BaseException):
    """The process dies here (nothing after it runs, no handler catches it)."""


class PivotingVM:
    """A running VM as libvirt shows it: the file each disk writes into, moved by snapshots and pivots."""

    def __init__(self, files: ProjectFiles) -> None:
        self.tops = {label: files.layers.path(layer) for label, layer in files.load().live.items()}
        self.pivots = 0

    def exists(self, name: str) -> bool:
        return True

    def state(self, name: str) -> VMState:
        return VMState.RUNNING

    def require(self, capability: object, what: str) -> None:
        pass

    def can(self, capability: object) -> bool:
        return False  # no guest agent

    def swap_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        self.tops.update(new_tops)

    def repoint_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        self.tops.update(new_tops)
        self.pivots += 1

    def disk_tops(self, name: str) -> dict[str, Path]:
        return dict(self.tops)

    def close(self) -> None:
        pass


@pytest.fixture
def crashed(ctx: Workspace, base_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A project whose save was killed right after the pivot; the VM, and each state's reference bytes."""
    monkeypatch.setattr(checkpoints, "MAX_CHAIN_FILES", 6)
    projects.new_project("run", str(base_image), ctx=ctx)
    files = ctx.projects.get("run")
    vm = PivotingVM(files)
    real_write = ProjectFiles.write

    def write(self: ProjectFiles, project: object) -> None:
        if vm.pivots:
            raise Killed
        real_write(self, project)  # type: ignore[arg-type]

    monkeypatch.setattr(ProjectFiles, "write", write)
    driver = OverlayChain(vm)  # type: ignore[arg-type]
    references: dict[str, Path] = {}
    with pytest.raises(Killed):
        for i in range(10):
            write_pattern(vm.tops["system"], 0x40 + i, i * 65536, 4096)
            state = driver.save(files, name=None, message=f"s{i}", author="me", memory=False)
            references[state.id] = snapshot_raw(files.layers.path(state.layers["system"]), tmp_path / f"ref-{i}.raw")
    monkeypatch.setattr(ProjectFiles, "write", real_write)
    write_pattern(vm.tops["system"], 0x7E, 30 * 65536, 4096)  # the guest goes on writing after the crash
    return files, vm, references


def test_repair_makes_the_layer_the_vm_writes_into_the_live_one(crashed, tmp_path: Path) -> None:
    files, vm, references = crashed
    assert len(references) >= 3
    moved, old_live = vm.tops["system"], files.layers.path(files.load().live["system"])
    assert moved != old_live and moved.is_file() and old_live.is_file()
    assert checkpoints.shown_layer(qcow2_peek.read_header(moved).backing_name or "") is not None
    states_before = files.states()

    without_vm = check_project(files, repair=True, backend=None)  # backend down: nothing of the VM's is deleted
    assert moved.is_file() and not any(moved.name in f.problem and f.repaired for f in without_vm)

    seen = check_project(files, backend=vm)  # type: ignore[arg-type]
    assert any(f"moved onto {moved.name}" in f.problem for f in seen)
    assert not any(moved.name in f.problem and f.action == "delete it" for f in seen)

    repaired = check_project(files, repair=True, backend=vm)  # type: ignore[arg-type]
    assert repaired and all(f.repaired for f in repaired), [f.to_dict() for f in repaired]
    assert files.load().live["system"] == moved.name
    assert moved.is_file() and not old_live.exists()  # the replaced layer, no VM holds it any more
    assert check_project(files, backend=vm) == []  # type: ignore[arg-type]
    assert files.states() == states_before
    for state_id, reference in references.items():
        assert same_content(files.layers.path(files.states()[state_id].layers["system"]), reference), state_id
    live = snapshot_raw(moved, tmp_path / "live.raw").read_bytes()
    assert live[30 * 65536 : 30 * 65536 + 4096] == bytes([0x7E]) * 4096  # what the guest wrote since is kept

    state = OverlayChain(vm).save(files, name=None, message="after", author="me", memory=False)  # type: ignore[arg-type]
    assert state.layers["system"] == moved.name and vm.tops["system"].name == files.load().live["system"]
