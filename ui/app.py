"""Starting the desktop window: ``vml-gui`` builds the window, wires the controllers and runs Qt."""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, QThreadPool, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from ui.main_window import STYLE, MainWindow
from ui.resources import icon_path

APP_ID = "io.github.vmlog.Vmlog"
BUSY_YOUNG = 20_000  # young objects beyond which a collection waits for the pool's jobs to end
MAX_POSTPONED = 10  # ticks a collection may wait for them, at most


def make_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("vmlog")
    app.setApplicationDisplayName("vmlog")
    app.setDesktopFileName(APP_ID)
    app.setOrganizationDomain("vmlog.github.io")
    app.setWindowIcon(QIcon(str(icon_path())))
    app.setStyleSheet(STYLE)
    return app  # type: ignore[return-value]


def build_window() -> MainWindow:
    """The window with every page wired to the services (what ``vml-gui`` shows)."""
    from ui.controllers import wire

    window = MainWindow()
    wire(window)
    return window


def settle_garbage_collector() -> None:
    """Move what start-up made (modules, Qt wrappers) out of the collector's sight.

    A full collection scans every tracked object while holding the GIL, so the UI thread waits while
    a pool job reading 5,000 states triggers one; frozen start-up objects make each scan shorter.
    """
    gc.collect()
    gc.freeze()


class IdleCollector(QObject):
    """Runs Python's cycle collector from the UI thread's event loop instead of at allocation thresholds.

    With automatic collection, whichever thread crosses a threshold collects while holding the GIL: a pool
    job reading thousands of state records sets off full collections that stall the UI thread for tens of
    milliseconds at a time. Collected here, a young-generation pass between events costs well under a
    millisecond and a full one (start-up objects frozen) a few; reference counting still frees everything
    that is not a cycle at once.
    """

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = 1000, full_every: int = 30) -> None:
        super().__init__(parent)
        self.full_every = full_every
        self.ticks = 0
        self.postponed = 0
        self.was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    def collect(self) -> None:
        """One pass, sized by what was allocated since the last; put off while a pool job holds a big young heap."""
        young, middle, _old = gc.get_count()
        if young > BUSY_YOUNG and self.postponed < MAX_POSTPONED and QThreadPool.globalInstance().activeThreadCount():
            # a job is building thousands of objects it still holds (a read of 5,000 states): scanning them
            # now would stall the window for nothing; once the job returns they are freed or handed over
            self.postponed += 1
            return
        self.postponed = 0
        self.ticks += 1
        if self.ticks % self.full_every == 0:
            gc.collect(2)
        elif middle >= gc.get_threshold()[1]:
            gc.collect(1)
        elif young >= gc.get_threshold()[0]:
            gc.collect(0)

    def stop(self) -> None:
        """Hand collection back to the interpreter (what it was before)."""
        self.timer.stop()
        if self.was_enabled:
            gc.enable()


def run() -> None:
    app = make_application()
    window = build_window()
    settle_garbage_collector()
    window.collector = IdleCollector(window)  # type: ignore[attr-defined]
    window.show()
    sys.exit(app.exec())


if __name__ == "__main__":
    run()
