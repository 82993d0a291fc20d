"""The strip at the bottom of the window listing running jobs, and where their failures surface."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from ui.failure_dialog import show_failure
from ui.progress import JobProgress
from ui.workers import Failure, Job, JobRunner


class JobsPanel(QFrame):
    """Shows one :class:`JobProgress` per running job; hides itself when nothing runs."""

    def __init__(self, runner: JobRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(12, 6, 12, 6)
        self.rows: dict[int, JobProgress] = {}
        self.last_failure_box = None
        runner.job_started.connect(self._add)
        self.setVisible(False)

    def _add(self, job: Job) -> None:
        job.signals.errored.connect(lambda failure: self._failed(job, failure))
        if getattr(job, "shown_in_page", False):  # its page draws its progress (a setup's step view)
            return
        row = JobProgress(job, self)
        self.rows[id(job)] = row
        self.box.addWidget(row)
        row.closed.connect(lambda: self._remove(job))
        self.setVisible(True)

    def _remove(self, job: Job) -> None:
        row = self.rows.pop(id(job), None)
        if row is not None:
            self.box.removeWidget(row)
            row.deleteLater()
        self.setVisible(bool(self.rows))

    def _failed(self, job: Job, failure: Failure) -> None:
        self.last_failure_box = show_failure(self.window(), f"{job.title or 'The operation'} failed", failure)
