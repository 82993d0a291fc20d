"""Run checks from the state menu and on the whole project: a job with progress, then fresh marks and a verdict.

``run_checks`` is replaced by a fake that records its arguments and its results in the logbook as the real one
does (booting clones is tested in tests/vmlog/checks), so the Checks column reads them back.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from ui.progress import JobProgress
from ui.statetree.model import CHECKS_COLUMN
from vmlog.app import checks, projects
from vmlog.app import states as app_states
from vmlog.checks import record
from vmlog.checks.runner import CheckResult
from vmlog.workspace import Workspace

PROJECT = "ana"


def tree_names(window) -> list[str]:
    return [(row.node.name or row.node.id[:8]) if row.node else "Now" for row in window.projects_page.tree.model().rows]


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active and not window.projects_controller._reading, timeout=30_000)


@pytest.fixture
def project(window, qtbot, tmp_path: Path) -> dict[str, str]:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project(PROJECT, str(base))
    for name in ("nominal", "shifted"):
        app_states.save_state(PROJECT, name)
    checks.add_check("mtop", "cat mtop", checks.expectation(number=172.4, tolerance="0.5"), project=PROJECT)
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: tree_names(window) == ["nominal", "shifted", "Now"], timeout=20_000)
    return {n.name: n.id for n in window.projects_controller.view.nodes if n.name}


class FakeRun:
    """A stand-in for run_checks: records the call, waits for ``release``, logs one result per state."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses  # state id -> the status it gets
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()

    def __call__(self, state_refs, *, project, every, ctx=None, on_step, on_result, **_: Any) -> checks.CheckRun:
        self.calls.append({"states": state_refs, "project": project, "every": every})
        ctx = ctx or Workspace.default()
        on_step("booting a clone")
        self.release.wait(20)
        run = checks.CheckRun(project=project, backend="kvm")
        wanted = state_refs or list(self.statuses)
        for op, state_id in enumerate(wanted, start=100):
            result = CheckResult("mtop", state_id, state_id[:8], self.statuses[state_id], "172.4 ± 0.5", "175", "", 1.0)
            record.record(ctx.logbook, project, op, result)
            run.results.append(result)
            on_result(result)
        return run


def _cell(window, state_id: str) -> str:
    model = window.projects_page.tree.state_model
    return model.index(model.row_of(state_id), CHECKS_COLUMN).data() or ""


def test_run_checks_on_a_state_shows_progress_then_its_mark(
    qtbot, window, project: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun({project["nominal"]: "passed", project["shifted"]: "diverged"})
    monkeypatch.setattr(checks, "run_checks", fake)
    page = window.projects_page
    page.tree.select_state(project["nominal"])
    assert page.actions_by_key["check-state"].isEnabled()
    page.actions_by_key["check-state"].trigger()
    qtbot.waitUntil(lambda: bool(window.jobs.rows), timeout=5_000)
    row: JobProgress = next(iter(window.jobs.rows.values()))
    assert "nominal" in row.title.text()
    qtbot.waitUntil(lambda: row.detail.text() == "booting a clone", timeout=10_000)  # progress reaches the panel
    fake.release.set()
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.text()
    assert fake.calls == [{"states": [project["nominal"]], "project": PROJECT, "every": False}]
    assert "passed" in _cell(window, project["nominal"]) and _cell(window, project["shifted"]) == ""
    assert "checks passed" in window.statusBar().currentMessage()
    assert window.notifier.sent[-1][0] == f"{PROJECT}: checks passed"


def test_run_checks_on_every_state_says_which_diverged(
    qtbot, window, project: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun({project["nominal"]: "passed", project["shifted"]: "diverged"})
    fake.release.set()
    monkeypatch.setattr(checks, "run_checks", fake)
    page = window.projects_page
    page._project_menu(page.projects.visualItemRect(page.projects.item(0)).center())
    assert "check-project" in [a.objectName() for a in page.last_menu.actions()]
    page.last_menu.close()
    page.actions_by_key["check-project"].trigger()
    wait_idle(qtbot, window)
    assert fake.calls == [{"states": None, "project": PROJECT, "every": True}]
    assert "diverged" in _cell(window, project["shifted"]) and "passed" in _cell(window, project["nominal"])
    title, text = window.notifier.sent[-1]
    assert title == f"{PROJECT}: checks diverged" and project["shifted"][:8] in text
    assert "diverged" in window.statusBar().currentMessage()


def test_the_real_run_checks_takes_the_arguments(qtbot, window, project: dict[str, str], vmlog_home: Path) -> None:
    """No fake: a project whose checks are all removed says how to add one (the call itself fits the use case)."""
    checks.remove_check("mtop", PROJECT)
    window.projects_page.tree.select_state(project["nominal"])
    window.projects_page.actions_by_key["check-state"].trigger()
    qtbot.waitUntil(lambda: window.jobs.last_failure_box is not None, timeout=20_000)
    wait_idle(qtbot, window)
    box = window.jobs.last_failure_box
    assert "has no checks" in box.text() and "vml check add" in box.informativeText()
    box.close()
