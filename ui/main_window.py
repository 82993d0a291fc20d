"""The main window: page navigation on the left, the pages, and running jobs along the bottom."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui.jobs_panel import JobsPanel
from ui.menus import build_menus
from ui.notify import Notifier
from ui.pages.appliances import AppliancesPage
from ui.pages.projects import ProjectsPage
from ui.pages.releases import ReleasesPage
from ui.workers import JobRunner

BUNDLE_SUFFIX = ".vmlstate"
PAGES = ("Projects", "Appliances", "Releases")


class MainWindow(QMainWindow):
    """Holds the pages and the job runner; dropping ``.vmlstate`` files emits ``bundles_dropped``."""

    bundles_dropped = Signal(list)

    closing = Signal()  # the window is about to close: stop timers, start no new work

    def __init__(self, runner: JobRunner | None = None) -> None:
        super().__init__()
        self.quitting = False
        self.close_question: QMessageBox | None = None
        self._close_timer = QTimer(self)
        self._close_timer.setInterval(50)
        self._close_timer.timeout.connect(self._close_when_idle)
        self.setWindowTitle("vmlog")
        self.setObjectName("vmlog-main")
        self.runner = runner or JobRunner(self)
        self.projects_page = ProjectsPage()
        self.appliances_page = AppliancesPage()
        self.releases_page = ReleasesPage()
        self.stack = QStackedWidget()
        for page in (self.projects_page, self.appliances_page, self.releases_page):
            self.stack.addWidget(page)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(136)
        for name in PAGES:
            self.nav.addItem(QListWidgetItem(name))
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        brand = QLabel("vmlog")
        brand.setObjectName("brand")
        nav_box = QWidget()
        nav_box.setObjectName("nav-box")
        nav_layout = QVBoxLayout(nav_box)
        nav_layout.setContentsMargins(0, 14, 0, 8)
        nav_layout.setSpacing(8)
        nav_layout.addWidget(brand)
        nav_layout.addWidget(self.nav, 1)
        self.jobs = JobsPanel(self.runner)
        self.notifier = Notifier(self.runner, self)
        body = QWidget()
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.setSpacing(0)
        body_layout.addWidget(self.stack, 1)
        body_layout.addWidget(self.jobs)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(nav_box)
        layout.addWidget(body, 1)
        self.setCentralWidget(central)
        self.nav.setCurrentRow(0)
        self.setAcceptDrops(True)
        self.menu_actions: dict[str, QAction] = {}
        self.about_box: QMessageBox | None = None
        build_menus(self)
        self.resize(1280, 800)

    def show_page(self, name: str) -> None:
        self.nav.setCurrentRow(PAGES.index(name))

    # -- dropping bundles ----------------------------------------------------------------
    @staticmethod
    def _bundles(event: QDragEnterEvent | QDropEvent) -> list[Path]:
        if not event.mimeData().hasUrls():
            return []
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        return [p for p in paths if p.suffix == BUNDLE_SUFFIX]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._bundles(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        bundles = self._bundles(event)
        if bundles:
            event.acceptProposedAction()
            self.bundles_dropped.emit(bundles)

    # -- closing ---------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Close without blocking the UI thread: ask first if jobs run, then wait for them in the event loop.

        Jobs still on a pool thread emit into objects the window owns; the window closes for real only
        once every one has returned, so nothing is freed under them.
        """
        if self.runner.idle() and (self.quitting or not self.runner.active):
            self.quitting = True
            self.closing.emit()
            super().closeEvent(event)
            return
        event.ignore()
        if self.quitting:
            return
        if not self.runner.active:
            self._stop_and_close()
            return
        self.close_question = self._ask_close()

    def _ask_close(self) -> QMessageBox:
        titles = [job.title or "a job" for job in self.runner.active]
        box = QMessageBox(
            QMessageBox.Icon.Question, "Quit vmlog?",
            f"{len(titles)} job{'s are' if len(titles) != 1 else ' is'} still running: {', '.join(titles)}.",
            QMessageBox.StandardButton.NoButton, self,
        )
        box.setInformativeText("Jobs that can stop are cancelled; the others finish first, then vmlog quits.")
        quit_button = box.addButton("Stop and quit", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep working", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.buttonClicked.connect(lambda button: button is quit_button and self._stop_and_close())
        box.open()
        return box

    def _stop_and_close(self) -> None:
        self.quitting = True
        self.closing.emit()  # controllers stop their timers and start no more reads
        self.runner.cancel_all()
        self.statusBar().showMessage("Waiting for running jobs to stop…")
        self.centralWidget().setEnabled(False)
        self._close_timer.start()

    def _close_when_idle(self) -> None:
        if self.runner.idle():
            self._close_timer.stop()
            self.close()


STYLE = """
#nav-box { background: palette(window); border-right: 1px solid palette(mid); }
#brand { font-size: 18px; font-weight: 700; padding: 0 16px 8px 16px; }
#nav { border: none; background: transparent; font-size: 14px; outline: 0; }
#nav::item { padding: 9px 16px; border-radius: 6px; margin: 1px 8px; }
#nav::item:selected { background: palette(highlight); color: palette(highlighted-text); }
#page-title { font-size: 20px; font-weight: 700; }
#page-subtitle, #muted { color: palette(placeholder-text); }
#catalog-note { color: #b9770e; }
#section { font-weight: 700; font-size: 13px; padding-top: 4px; }
#tile-title { font-size: 15px; font-weight: 600; }
QToolButton { padding: 4px 10px; }
QTreeView::item { padding: 3px 4px; }
"""
