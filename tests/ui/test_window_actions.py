"""Destructive and misleading actions of the window, on libvirt's test driver (no daemon, no guest).

Branch asks a branch name; Delete's default button is Cancel; work that cannot be stopped offers no Cancel;
closing the window during a job asks and never blocks the UI thread; a job ending after its page is gone
does nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from ui.dialogs import BranchDialog
from ui.progress import JobProgress
from ui.workers import Job
from vmlog.app import projects
from vmlog.app import states as app_states

PROJECT = "lab"


@pytest.fixture
def project(window, qtbot, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project(PROJECT, str(base))
    app_states.save_state(PROJECT, "fresh", message="as set up")
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: tree_names(window) == ["fresh", "Now"], timeout=20_000)
    return PROJECT


def tree_names(window) -> list[str]:
    return [(row.node.name or row.node.id[:8]) if row.node else "Now" for row in window.projects_page.tree.model().rows]


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active and not window.projects_controller._reading, timeout=30_000)


def _id(window, name: str) -> str:
    return next(n.id for n in window.projects_controller.view.nodes if n.name == name)


def test_delete_asks_with_cancel_as_the_default(qtbot, window, project: str) -> None:
    page = window.projects_page
    page.tree.select_state(_id(window, "fresh"))
    page.buttons["delete"].click()
    box = window.projects_controller.active_dialog
    assert isinstance(box, QMessageBox)
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    qtbot.keyClick(box, Qt.Key.Key_Return)  # Return keeps the state
    wait_idle(qtbot, window)
    assert [s.name for s in app_states.states(project)[1].values()] == ["fresh"]


def test_branch_asks_a_new_name_and_the_branch_shows_under_it(qtbot, window, project: str) -> None:
    page = window.projects_page
    app_states.save_state(project, "second", message="more work")
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: tree_names(window) == ["fresh", "second", "Now"], timeout=20_000)
    page.tree.select_state(_id(window, "fresh"))
    page.buttons["branch"].click()
    dialog = window.projects_controller.active_dialog
    assert isinstance(dialog, BranchDialog)
    assert not dialog.ok.isEnabled()
    dialog.edit.setText("second")
    assert not dialog.ok.isEnabled() and "exists" in dialog.problem.text()
    dialog.edit.setText("try-gcc13")
    assert dialog.ok.isEnabled()
    dialog.ok.click()
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.text()
    qtbot.waitUntil(lambda: "try-gcc13" in tree_names(window), timeout=20_000)
    rows = {(r.node.name if r.node else "Now"): r for r in page.tree.model().rows}
    assert rows["try-gcc13"].depth == rows["second"].depth and rows["try-gcc13"].lane != rows["second"].lane
    assert rows["try-gcc13"].is_current


def test_work_that_cannot_stop_offers_no_cancel(qtbot) -> None:
    steady = JobProgress(Job(lambda progress=None: None, pass_cancel=False))
    stoppable = JobProgress(Job(lambda progress=None, cancel=None: None))
    qtbot.addWidget(steady)
    qtbot.addWidget(stoppable)
    assert steady.cancel_button.isHidden() and not stoppable.cancel_button.isHidden()


def test_start_suspend_and_shut_down_offer_no_cancel(qtbot, window, project: str) -> None:
    window.projects_page.buttons["start"].click()
    rows = list(window.jobs.rows.values())
    assert rows and all(row.cancel_button.isHidden() for row in rows)
    wait_idle(qtbot, window)


def _blocking_job(release: threading.Event, title: str = "Exporting fresh") -> Job:
    def work(progress=None) -> str:
        release.wait(30)
        return "done"

    return Job(work, title=title, pass_cancel=False)


def test_closing_during_a_job_asks_and_keeps_the_ui_thread_free(qtbot, window, project: str) -> None:
    release = threading.Event()
    window.runner.start(_blocking_job(release))
    began = time.monotonic()
    window.close()
    assert time.monotonic() - began < 0.1  # close() returned at once: no waiting on the pool
    box = window.close_question
    assert isinstance(box, QMessageBox) and "Exporting fresh" in box.text() and window.isVisible()
    keep = box.defaultButton()
    assert keep.text() == "Keep working"
    keep.click()
    assert window.isVisible() and not window.quitting
    window.close()
    quit_button = next(b for b in window.close_question.buttons() if b.text() == "Stop and quit")
    quit_button.click()
    assert window.isVisible()  # the job has not returned yet
    qtbot.wait(200)  # the event loop keeps running meanwhile
    release.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    assert window.runner.idle()


def test_a_job_ending_after_its_page_is_gone_does_nothing(qtbot, vmlog_home: Path) -> None:
    from ui.app import make_application
    from ui.workers import JobRunner

    make_application([])
    runner = JobRunner()  # outlives the window, as the pool's jobs may
    window = build_window_with(runner)
    release = threading.Event()
    controller = window.projects_controller
    seen: list[str] = []
    job = controller.run("Exporting fresh", lambda progress=None, ctx=None: release.wait(30) and "ok",
                         on_result=lambda _r: seen.append(controller.page.objectName()))
    window.deleteLater()
    qtbot.waitUntil(lambda: not _alive(controller), timeout=5000)
    release.set()
    qtbot.waitUntil(runner.idle, timeout=10_000)
    qtbot.wait(100)  # the queued signals are delivered now, to slots whose owner is gone
    assert seen == [] and job.result == "ok"


def build_window_with(runner):
    from ui.controllers import wire
    from ui.main_window import MainWindow

    window = MainWindow(runner)
    wire(window, refresh_ms=0, events=False)
    return window


def _alive(obj) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)
