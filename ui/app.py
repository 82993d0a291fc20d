"""Starting the desktop window: ``vml-gui`` builds the window, wires the controllers and runs Qt."""

from __future__ import annotations

import gc
import sys

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from ui.main_window import STYLE, MainWindow
from ui.resources import icon_path

APP_ID = "io.github.vmlog.Vmlog"


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


def run() -> None:
    app = make_application()
    window = build_window()
    settle_garbage_collector()
    window.show()
    sys.exit(app.exec())


if __name__ == "__main__":
    run()
