"""``vmlog.app.checks`` on the libvirt test driver with a fake guest agent: clones come and go, states stay put."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from hypervisors.errors import Unsupported
from hypervisors.guest import ExecResult, GuestAgent
from vmlog.app import check_run, checks, projects
from vmlog.app import states as app_states
from vmlog.checks.clone import Clone, require_overlay_backend
from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.projects.backends import open_backend
from vmlog.projects.layers import LayerStore
from vmlog.workspace import Workspace


class LayerAgent(GuestAgent):
    """Answers every command with the output given for the state layer the clone's system disk backs onto."""

    kind = "fake"

    def __init__(self, outputs: dict[str, str], layer: str, interrupt: bool = False) -> None:
        self.outputs, self.layer, self.interrupt = outputs, layer, interrupt
        self.commands: list[str] = []

    def ping(self, timeout: float = 5.0) -> None:
        return None

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        if self.interrupt:
            raise KeyboardInterrupt
        self.commands.append(argv[-1])
        return ExecResult(0, self.outputs[self.layer].encode())


@pytest.fixture
def ctx(vmlog_home: Path, tmp_path: Path) -> Workspace:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project("ana", str(base), ctx=ctx)
    app_states.save_state("ana", "nominal", ctx=ctx)
    app_states.save_state("ana", "shifted", ctx=ctx)
    return ctx


@pytest.fixture
def outputs(ctx: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """State layer -> what the guest prints; the agent is the fake, the guest has the vmlog agent."""
    states = {s.name: s for s in ctx.projects.get("ana").states().values()}
    table = {
        states["nominal"].layers["system"]: "M_top = 172.4\n",
        states["shifted"].layers["system"]: "M_top = 175.0\n",
    }
    agents: list[LayerAgent] = []

    def guest(backend: object, clone: Clone, kind: str) -> LayerAgent:
        disk = clone.spec.disk("system")
        layer = Path(LayerStore(disk.path.parent).backing_name(disk.path.name) or "").name
        agents.append(LayerAgent(table, layer, interrupt="interrupt" in table))
        return agents[-1]

    monkeypatch.setattr(check_run, "_guest", guest)
    monkeypatch.setattr(check_run, "guest_facts", lambda files, project: {"agent_kind": "vmlog"})
    yield table


def _layer_digests(ctx: Workspace) -> dict[str, str]:
    layers = ctx.projects.get("ana").root / "layers"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(layers.iterdir())}


def _vms(ctx: Workspace) -> list[str]:
    with open_backend(ctx.projects.get("ana").load()) as backend:
        return backend.list_vms()


def _mtop(ctx: Workspace) -> None:
    wanted = checks.expectation(number=172.4, tolerance="0.5")
    checks.add_check("mtop", "cat /data/mtop", wanted, project="ana", ctx=ctx)


def test_add_list_rm(ctx: Workspace) -> None:
    _mtop(ctx)
    checks.add_check("events", "wc -l < /data/ev", checks.expectation(match=r"^\d+$"), project="ana", ctx=ctx)
    assert [c.name for c in checks.list_checks("ana", ctx=ctx).checks] == ["mtop", "events"]
    with pytest.raises(AlreadyExists):
        _mtop(ctx)
    checks.add_check("mtop", "cat /x", checks.expectation(expect="1"), replace=True, project="ana", ctx=ctx)
    listing = checks.list_checks("ana", ctx=ctx)
    assert [(c.name, c.command) for c in listing.checks] == [("mtop", "cat /x"), ("events", "wc -l < /data/ev")]
    assert listing.to_dict()["checks"][0]["expected"] == "text '1'"
    checks.remove_check("mtop", "ana", ctx=ctx)
    with pytest.raises(NotFound):
        checks.remove_check("mtop", "ana", ctx=ctx)
    assert [c.name for c in checks.list_checks("ana", ctx=ctx).checks] == ["events"]


def test_expectation_needs_exactly_one_kind() -> None:
    with pytest.raises(InvalidInput):
        checks.expectation()
    with pytest.raises(InvalidInput):
        checks.expectation(expect="a", match="b")
    with pytest.raises(InvalidInput):
        checks.expectation(expect="a", tolerance="1")


def test_run_passes_on_one_state_diverges_on_the_other_and_touches_nothing(
    ctx: Workspace, outputs: dict[str, str]
) -> None:
    _mtop(ctx)
    before, vms_before = _layer_digests(ctx), _vms(ctx)
    run = checks.run_checks(["nominal", "shifted"], project="ana", ctx=ctx)
    assert [(r.state.split()[-1], r.status) for r in run.results] == [("nominal", "passed"), ("shifted", "diverged")]
    assert run.exit_code == checks.EXIT_DIVERGED and run.to_dict()["exit_code"] == 3
    assert run.results[1].observed == "175"
    assert _layer_digests(ctx) == before, "a state's layer (or the live layer) was written"
    assert _vms(ctx) == vms_before, "a clone VM was left defined"
    assert not any((ctx.home.cache / check_run.CLONES_DIR / "ana").iterdir())
    rows = [e for e in ctx.logbook.entries(project="ana") if e.action.startswith("check ")]
    assert [(e.action, e.outcome) for e in rows][-3:] == [("check run", "ok"), ("check result", "ok"),
                                                          ("check result", "failed")]
    last = checks.last_check_results("ana", ctx=ctx)
    by_name = {s.name: last[s.id].status for s in ctx.projects.get("ana").states().values()}
    assert by_name == {"nominal": "passed", "shifted": "diverged"}


def test_only_passing_results_exit_zero(ctx: Workspace, outputs: dict[str, str]) -> None:
    _mtop(ctx)
    run = checks.run_checks(["nominal"], project="ana", ctx=ctx)
    assert run.exit_code == 0 and run.to_dict()["passed"]
    everything = checks.run_checks(project="ana", every=True, ctx=ctx)
    assert len(everything.results) == 2


def test_ctrl_c_removes_the_clone(ctx: Workspace, outputs: dict[str, str]) -> None:
    _mtop(ctx)
    outputs["interrupt"] = ""
    before, vms_before = _layer_digests(ctx), _vms(ctx)
    with pytest.raises(KeyboardInterrupt):
        checks.run_checks(["nominal"], project="ana", ctx=ctx)
    assert _vms(ctx) == vms_before and _layer_digests(ctx) == before
    assert not any((ctx.home.cache / check_run.CLONES_DIR / "ana").iterdir())
    run_rows = [e for e in ctx.logbook.entries(project="ana") if e.action == "check run"]
    assert run_rows[-1].outcome == "cancelled"


def test_a_clone_left_by_a_killed_run_is_removed_by_the_next(ctx: Workspace, outputs: dict[str, str]) -> None:
    _mtop(ctx)
    leftover = ctx.home.cache / check_run.CLONES_DIR / "ana" / "vmlog-dead-check-000000000000"
    leftover.mkdir(parents=True)
    (leftover / "system-0.qcow2").write_bytes(b"x")
    checks.run_checks(["nominal"], project="ana", ctx=ctx)
    assert not leftover.exists()


def test_no_checks_and_no_agent_are_refused(ctx: Workspace) -> None:
    with pytest.raises(InvalidInput, match="no checks"):
        checks.run_checks(project="ana", ctx=ctx)
    _mtop(ctx)
    with pytest.raises(Exception, match="no agent"):  # the base is not the test appliance: no agent known
        checks.run_checks(project="ana", ctx=ctx)


def test_a_native_tree_project_is_refused_before_anything_is_made(ctx: Workspace, outputs: dict[str, str]) -> None:
    _mtop(ctx)
    files = ctx.projects.get("ana")
    project = files.load()
    project.backend = "virtualbox"  # its states would live in VirtualBox's snapshot tree
    files.write(project)
    with pytest.raises(Unsupported, match="snapshot tree"):
        checks.run_checks(project="ana", ctx=ctx)
    assert not (ctx.home.cache / check_run.CLONES_DIR / "ana").exists()


def test_a_backend_without_overlay_chains_cannot_boot_a_clone() -> None:
    from hypervisors.base import SnapshotModel

    native = SimpleNamespace(name="vmware", snapshot_model=SnapshotModel.NATIVE_TREE)
    with pytest.raises(Unsupported, match="--backend kvm"):
        require_overlay_backend(native)  # type: ignore[arg-type]
