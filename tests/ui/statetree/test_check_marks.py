"""The state tree's Checks column: each state's last check results, read from the logbook, shown and explained."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from ui.statetree.checks import read_check_marks, show_check_marks
from ui.statetree.layout import StateNode
from ui.statetree.model import CHECKS_COLUMN, COLUMNS
from ui.statetree.view import StateTreeView
from vmlog.app import checks, projects
from vmlog.app import states as app_states
from vmlog.checks import record
from vmlog.checks.runner import CheckResult
from vmlog.workspace import Workspace


def _node(state_id: str, parent: str | None, t: float) -> StateNode:
    return StateNode(state_id, parent, state_id, t, "anna@lab", "", None)


def _result(state_id: str, check: str, status: str, observed: str) -> CheckResult:
    return CheckResult(check, state_id, state_id[:8], status, "172.4 ± 0.1", observed, "detail", 1.0)


def _project_with_results(vmlog_home: Path, tmp_path: Path) -> tuple[Workspace, dict[str, str]]:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project("ana", str(base), ctx=ctx)
    for name in ("nominal", "shifted", "untested"):
        app_states.save_state("ana", name, ctx=ctx)
    ids = {s.name or "": s.id for s in ctx.projects.get("ana").states().values()}
    for name in ("mtop", "events"):
        checks.add_check(name, "true", checks.expectation(expect=""), project="ana", ctx=ctx)
    record.record(ctx.logbook, "ana", 1, _result(ids["nominal"], "mtop", "diverged", "171"))
    record.record(ctx.logbook, "ana", 2, _result(ids["nominal"], "mtop", "passed", "172.4"))  # newer: counts
    record.record(ctx.logbook, "ana", 2, _result(ids["nominal"], "events", "passed", "12"))
    record.record(ctx.logbook, "ana", 2, _result(ids["shifted"], "mtop", "diverged", "175"))
    record.record(ctx.logbook, "ana", 2, _result(ids["shifted"], "events", "passed", "12"))
    return ctx, ids


def test_marks_read_from_the_logbook(vmlog_home: Path, tmp_path: Path) -> None:
    ctx, ids = _project_with_results(vmlog_home, tmp_path)
    marks = read_check_marks("ana", ctx)
    assert marks[ids["nominal"]].status == "passed"
    assert marks[ids["shifted"]].status == "diverged" and "1 diverged" in marks[ids["shifted"]].text
    assert "mtop: diverged (got 175)" in marks[ids["shifted"]].tooltip
    assert marks[ids["untested"]].status == "never run" and marks[ids["untested"]].text == ""
    checks.remove_check("mtop", "ana", ctx=ctx)  # a removed check's results no longer count
    assert read_check_marks("ana", ctx)[ids["shifted"]].status == "passed"
    assert read_check_marks("nope", ctx) == {}


def test_the_tree_shows_a_checks_column(qtbot, vmlog_home: Path, tmp_path: Path) -> None:
    ctx, ids = _project_with_results(vmlog_home, tmp_path)
    view = StateTreeView()
    qtbot.addWidget(view)
    nodes = [_node(ids["nominal"], None, 1), _node(ids["shifted"], ids["nominal"], 2)]
    view.set_states(nodes, ids["shifted"])
    view.select_state(ids["nominal"])
    model = view.model()
    assert COLUMNS[CHECKS_COLUMN] == "Checks" and model.headerData(CHECKS_COLUMN, Qt.Orientation.Horizontal) == "Checks"
    with qtbot.waitSignal(model.dataChanged):
        show_check_marks(model, read_check_marks("ana", ctx), CHECKS_COLUMN)
    cells = {model.index(r, 0).data(): model.index(r, CHECKS_COLUMN) for r in range(model.rowCount())}
    assert cells[ids["nominal"]].data() == "\u2714 passed"
    assert cells[ids["shifted"]].data().endswith("1 diverged")
    assert cells[ids["shifted"]].data(Qt.ItemDataRole.ForegroundRole).name() == "#c62828"
    assert "events: passed" in cells[ids["shifted"]].data(Qt.ItemDataRole.ToolTipRole)
    assert cells["Now"].data() is None
    assert view.selected_state() == ids["nominal"], "showing the marks lost the selection"
