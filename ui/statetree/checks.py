"""The state tree's Checks column: each state's last reproduction check results (passed, diverged, never run)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtGui import QColor

from vmlog.app import checks as app_checks
from vmlog.app.types import Workspace
from vmlog.errors import VmlogError

CHECKS_TITLE = "Checks"
COLOURS = {"passed": "#2e7d32", "diverged": "#c62828", "error": "#b26a00"}
CHECK_ROLES = (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole)
SYMBOLS = {"passed": "\u2714", "diverged": "\u2718", "error": "!"}  # ✔ ✘ !


@dataclass(frozen=True)
class CheckMark:
    """What one state's Checks cell shows: a word (with counts), its colour, and each check's result."""

    status: str  # passed, diverged, error, never run
    text: str
    tooltip: str

    @property
    def colour(self) -> QColor | None:
        name = COLOURS.get(self.status)
        return QColor(name) if name else None


def mark_of(state: app_checks.StateChecks) -> CheckMark:
    """The cell of one state, from its last results (a removed check's old result no longer counts)."""
    if state.status == "never run" or not state.results:
        return CheckMark("never run", "", "no check has run on this state: `vml check run STATE`")
    counts = {status: 0 for status in ("passed", "diverged", "error")}
    lines = []
    for result in sorted(state.results.values(), key=lambda r: r.check):
        counts[result.status] = counts.get(result.status, 0) + 1
        observed = f" (got {result.observed})" if result.observed and result.status != "passed" else ""
        lines.append(f"{SYMBOLS.get(result.status, '?')} {result.check}: {result.status}{observed}")
    if state.status == "passed":
        text = f"{SYMBOLS['passed']} passed"
    else:
        text = f"{SYMBOLS.get(state.status, '?')} {counts.get(state.status, 0)} {state.status}"
    return CheckMark(state.status, text, "\n".join(["Last check results:", *lines]))


def read_check_marks(project: str, ctx: Workspace | None) -> dict[str, CheckMark]:
    """State id -> its Checks cell; empty when the project's checks cannot be read (the tree still shows)."""
    try:
        results = app_checks.last_check_results(project, ctx=ctx)
    except VmlogError:
        return {}
    return {state_id: mark_of(state) for state_id, state in results.items()}


def check_cell(mark: CheckMark | None, role: int) -> object:
    """The Checks cell's data for ``role`` (None: nothing to show)."""
    if mark is None:
        return None
    if role == Qt.ItemDataRole.DisplayRole:
        return mark.text
    if role == Qt.ItemDataRole.ToolTipRole:
        return mark.tooltip
    if role == Qt.ItemDataRole.ForegroundRole:
        return mark.colour
    return None


def show_check_marks(model: QAbstractItemModel, marks: dict[str, CheckMark], column: int) -> None:
    """Give the state tree model its check marks and repaint that column only (no reset, the selection stays)."""
    model.check_marks = marks  # type: ignore[attr-defined]
    rows = model.rowCount()
    if rows:
        model.dataChanged.emit(model.index(0, column), model.index(rows - 1, column))
