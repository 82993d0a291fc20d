"""Checks of a VirtualBox project's states (through the simulator), booted as clones under kvm (the test driver)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors.guest import ExecResult, GuestAgent
from vmlog.app import check_run, checks, projects
from vmlog.app import states as app_states
from vmlog.checks.clone import Clone
from vmlog.projects.layers import LayerStore
from vmlog.workspace import Workspace


class StateAgent(GuestAgent):
    """Prints the mass of the state whose content layer the clone's system disk backs onto."""

    kind = "fake"

    def __init__(self, masses: dict[str, str], backing: str) -> None:
        self.masses, self.backing = masses, backing

    def ping(self, timeout: float = 5.0) -> None:
        return None

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        mass = next(value for state_id, value in self.masses.items() if self.backing.startswith(state_id))
        return ExecResult(0, f"{mass}\n".encode())


def _machines_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".vdi", ".vbox")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_native_states_are_read_from_their_snapshots_and_booted_under_kvm(
    vmlog_home: Path, tmp_path: Path, simulated_tools: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 4 * 1024 * 1024)
    machines = simulated_tools / "machines"
    projects.new_project(
        "vb", str(base), backend="virtualbox", backend_options={"machine_folder": str(machines)}, memory_mib=256,
        ctx=ctx,
    )
    nominal = app_states.save_state("vb", "nominal", ctx=ctx)
    shifted = app_states.save_state("vb", "shifted", ctx=ctx)
    masses = {nominal.id: "172.4", shifted.id: "175.0"}

    def guest(backend: object, clone: Clone, kind: str) -> StateAgent:
        disk = clone.spec.disk("system")
        return StateAgent(masses, Path(LayerStore(disk.path.parent).backing_name(disk.path.name) or "").name)

    monkeypatch.setattr(check_run, "_guest", guest)
    monkeypatch.setattr(check_run, "guest_facts", lambda files, project: {"agent_kind": "vmlog"})
    checks.add_check("mtop", "cat /m", checks.expectation(number=172.4, tolerance="0.1"), project="vb", ctx=ctx)
    before = _machines_digest(machines)
    assert before != hashlib.sha256().hexdigest(), "the simulator wrote no disk files to compare"
    run = checks.run_checks(["nominal", "shifted"], project="vb", backend="kvm", ctx=ctx)
    assert run.backend == "kvm"
    assert [(r.state_id, r.status) for r in run.results] == [(nominal.id, "passed"), (shifted.id, "diverged")]
    assert _machines_digest(machines) == before, "the VirtualBox VM's disks or snapshots changed"
    cache = ctx.home.cache
    assert [p for p in cache.rglob("*") if p.is_file() and "check" in str(p.relative_to(cache))] == []
