"""Jobs run service calls off the UI thread; results, progress, failures and cancels reach the UI."""

from __future__ import annotations

import threading

from PySide6.QtWidgets import QMessageBox

from ui.failure_dialog import failure_box
from ui.workers import Failure, Job, JobRunner
from vmlog.errors import Cancelled, NotFound


def test_job_reports_progress_and_result_on_the_ui_thread(qtbot) -> None:
    seen: list[object] = []
    ui_thread = threading.current_thread()
    threads: list[threading.Thread] = []

    def work(n: int, *, progress, cancel) -> int:
        threads.append(threading.current_thread())
        for i in range(n):
            progress(f"step {i}", i / n)
        return n * 2

    runner = JobRunner()
    job = Job(work, 3, title="work")
    job.signals.progress.connect(lambda value: seen.append((value, threading.current_thread())))
    with qtbot.waitSignal(job.signals.finished, timeout=10_000) as blocker:
        runner.start(job)
    assert blocker.args == [6]
    assert threads[0] is not ui_thread
    assert [v for v, _t in seen] == [("step 0", 0.0), ("step 1", 1 / 3), ("step 2", 2 / 3)]
    assert all(t is ui_thread for _v, t in seen)


def test_generator_job_yields_progress_and_returns_its_value(qtbot) -> None:
    def steps(progress=None, cancel=None):
        yield "download"
        yield "verify"
        return "done"

    job = Job(steps, pass_progress=False, pass_cancel=False)
    values: list[object] = []
    job.signals.progress.connect(values.append)
    with qtbot.waitSignal(job.signals.finished, timeout=10_000) as blocker:
        JobRunner().start(job)
    assert values == ["download", "verify"]
    assert blocker.args == ["done"]


def test_a_failure_reaches_the_user_as_a_short_message_with_folded_details(qtbot) -> None:
    def broken(*, progress, cancel) -> None:
        raise NotFound("no project called 'ghost'", fix="list them with `vml project list`")

    job = Job(broken, title="Opening ghost")
    with qtbot.waitSignal(job.signals.errored, timeout=10_000) as blocker:
        JobRunner().start(job)
    failure: Failure = blocker.args[0]
    assert failure.message == "no project called 'ghost'"
    assert failure.fix == "list them with `vml project list`"
    assert "Traceback" in failure.details and "NotFound" in failure.details
    box = failure_box(None, "Opening ghost failed", failure)
    qtbot.addWidget(box)
    assert box.text() == "no project called 'ghost'"
    assert "vml project list" in box.informativeText()
    assert "NotFound" in box.detailedText()  # there, but folded behind "Show Details..."
    assert "Traceback" not in box.text() + box.informativeText()
    assert box.icon() == QMessageBox.Icon.Warning


def test_cancel_sets_the_event_the_service_watches(qtbot) -> None:
    started = threading.Event()

    def waits(*, progress, cancel: threading.Event) -> None:
        started.set()
        if cancel.wait(30):
            raise Cancelled("stopped by the user")

    job = Job(waits)
    runner = JobRunner()
    runner.start(job)
    assert started.wait(10)
    with qtbot.waitSignal(job.signals.cancelled, timeout=10_000):
        job.cancel()
    assert job.was_cancelled and job.failure is None
    assert runner.wait(10_000)
