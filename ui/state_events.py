"""Backend VM state events as a Qt signal: the bridge from the hypervisor's event thread to the GUI thread.

:class:`vmlog.app.watch.ProjectWatch` calls back on a backend thread (libvirt's event loop,
which Qt does not know). That thread touches no Qt object at all: it only puts the event in a
thread-safe queue, which a timer on the GUI thread drains into :attr:`StateEvents.changed`.
Subscribing opens backend connections, which can block on a remote libvirt, so it runs as a quiet
job; :attr:`StateEvents.coverage` then says whether every project's backend pushes events (if not,
the caller keeps polling).
"""

from __future__ import annotations

import queue
import threading

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

from ui.workers import Job, JobRunner
from vmlog.app.types import VMState, Workspace
from vmlog.app.watch import ProjectWatch


class StateEvents(QObject):
    """Emits ``changed(project, state value)`` on the GUI thread for every VM state change of a project."""

    changed = Signal(str, str)
    coverage = Signal(bool)  # after each sync: True if every project's backend pushes events
    DRAIN_MS = 100  # how late an event may reach the GUI; far below what a person notices

    def __init__(self, runner: JobRunner, ctx: Workspace | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.ctx = ctx
        self.watch: ProjectWatch | None = None
        self.covered = False
        self._syncing = False
        self._closed = threading.Event()
        self._arrived: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._drain = QTimer(self)
        self._drain.setInterval(self.DRAIN_MS)
        self._drain.timeout.connect(self._forward)
        self._drain.start()

    def sync(self) -> None:
        """Subscribe to the backends the projects use now (again after projects appear); non-blocking."""
        if self._syncing or self._closed.is_set():
            return
        self._syncing = True

        def subscribe(progress=None) -> bool:
            if self.watch is None:
                self.watch = ProjectWatch(self._on_state, self.ctx)
            covered = self.watch.sync()
            if self._closed.is_set():  # stopped while subscribing: leave nothing behind
                self.watch.stop()
                return False
            return covered

        job = Job(subscribe, title="Watching the VMs", pass_cancel=False, pass_progress=False)
        job.signals.finished.connect(self._synced)
        job.signals.errored.connect(lambda _failure: self._synced(False))
        job.signals.done.connect(lambda: setattr(self, "_syncing", False))
        self.runner.start_quiet(job)

    def stop(self) -> None:
        """Unsubscribe (blocks until no backend callback is running); no signal is emitted afterwards."""
        self._closed.set()
        self._drain.stop()
        if self.watch is not None:
            self.watch.stop()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        """Installed on the main window: closing it unsubscribes before any widget goes away."""
        if event.type() == QEvent.Type.Close:
            self.stop()
        return False

    def _synced(self, covered: bool) -> None:
        self.covered = bool(covered) and not self._closed.is_set()
        self.coverage.emit(self.covered)

    def _on_state(self, project: str, state: VMState) -> None:  # on the backend's event thread: no Qt here
        if not self._closed.is_set():
            self._arrived.put((project, state.value))

    def _forward(self) -> None:  # on the GUI thread
        while not self._closed.is_set():
            try:
                project, state = self._arrived.get_nowait()
            except queue.Empty:
                return
            self.changed.emit(project, state)
