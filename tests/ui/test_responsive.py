"""The window keeps answering while a long download runs in a job, shows its rate, and cancels cleanly."""

from __future__ import annotations

from PySide6.QtCore import QTimer

from ui.workers import Job
from vmlog import paths
from vmlog.appliances.download import fetch
from vmlog.store.images import ImageStore


def test_ui_thread_keeps_running_during_a_download_and_cancel_keeps_the_partial_file(
    qtbot, window, slow_server
) -> None:
    store = ImageStore(paths.home().ensure().images)
    ticks: list[int] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    job = Job(
        fetch,
        [slow_server.url],
        store,
        name="slow",
        version="1",
        format="raw",
        digest=("sha256", slow_server.sha256),
        size=len(slow_server.payload),
        title="Downloading slow 1",
    )
    progress: list[object] = []
    job.signals.progress.connect(progress.append)
    window.runner.start(job)
    # while bytes trickle in, the UI thread keeps running timers and shows the transfer
    qtbot.waitUntil(lambda: len(progress) >= 3, timeout=30_000)
    before = len(ticks)
    qtbot.waitUntil(lambda: len(ticks) >= before + 5, timeout=30_000)
    assert not job.finished_event.is_set(), "the download was meant to still be running"
    row = window.jobs.rows[id(job)]
    assert window.jobs.isVisible()
    qtbot.waitUntil(lambda: "/s" in row.detail.text(), timeout=30_000)
    assert "of 4.0 MiB" in row.detail.text()
    # Cancel, as the user would
    with qtbot.waitSignal(job.signals.cancelled, timeout=30_000):
        row.cancel_button.click()
    assert job.failure is None
    assert store.list() == []  # nothing unverified in the store
    partials = list(paths.home().downloads.glob("*.part"))
    assert len(partials) == 1 and 0 < partials[0].stat().st_size < len(slow_server.payload)
    qtbot.waitUntil(lambda: id(job) not in window.jobs.rows, timeout=10_000)

    # a second attempt resumes and lands the verified image in the store
    slow_server.release.set()
    again = Job(
        fetch, [slow_server.url], store, name="slow", version="1", format="raw",
        digest=("sha256", slow_server.sha256), size=len(slow_server.payload), title="Downloading slow 1",
    )
    with qtbot.waitSignal(again.signals.finished, timeout=60_000) as blocker:
        window.runner.start(again)
    assert blocker.args[0].sha256 == slow_server.sha256
    timer.stop()
