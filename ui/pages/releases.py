"""The Releases page (layout only): Running, Available and Configure, with Start and "Customize & Start"."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)


def _table(columns: tuple[str, ...]) -> tuple[QTreeView, QStandardItemModel]:
    model = QStandardItemModel(0, len(columns))
    model.setHorizontalHeaderLabels(list(columns))
    view = QTreeView()
    view.setModel(model)
    view.setRootIsDecorated(False)
    view.setUniformRowHeights(True)
    view.setAlternatingRowColors(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    for column in range(len(columns) - 1):
        view.setColumnWidth(column, 180)
    return view, model


class ReleasesPage(QWidget):
    """``start_requested(release, customize)``: the user pressed Start or Customize & Start."""

    start_requested = Signal(str, bool)
    unmount_requested = Signal(str)
    source_saved = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        title = QLabel("Releases")
        title.setObjectName("page-title")
        subtitle = QLabel("Software releases from your release sources, mounted into the project's machine.")
        subtitle.setObjectName("page-subtitle")
        self.running, self.running_model = _table(("Release", "Revision", "Mounted at", "Project"))
        self.available, self.available_model = _table(("Release", "Platform", "Revision", "Source"))
        self.start = QPushButton("Start")
        self.customize = QPushButton("Customize && Start")
        self.unmount = QPushButton("Unmount")
        self.start.clicked.connect(lambda: self._start(False))
        self.customize.clicked.connect(lambda: self._start(True))
        self.unmount.clicked.connect(self._unmount)
        self.source = QLineEdit()
        self.source.setPlaceholderText("https://cvmfs-stratum-one.example.org/cvmfs/sft.example.org")
        save = QPushButton("Save")
        save.clicked.connect(lambda: self.source_saved.emit(self.source.text().strip()))

        running_tab = QWidget()
        running_layout = QVBoxLayout(running_tab)
        running_layout.addWidget(self.running, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.unmount)
        running_layout.addLayout(row)
        available_tab = QWidget()
        available_layout = QVBoxLayout(available_tab)
        available_layout.addWidget(self.available, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.customize)
        row.addWidget(self.start)
        available_layout.addLayout(row)
        configure_tab = QWidget()
        form = QFormLayout(configure_tab)
        form.addRow("Release source:", self.source)
        form.addRow("", save)
        self.tabs = QTabWidget()
        self.tabs.addTab(running_tab, "Running")
        self.tabs.addTab(available_tab, "Available")
        self.tabs.addTab(configure_tab, "Configure")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(12)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addWidget(self.tabs, 1)

    def set_available(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.available_model.removeRows(0, self.available_model.rowCount())
        for row in rows:
            self.available_model.appendRow([QStandardItem(cell) for cell in row])

    def set_running(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.running_model.removeRows(0, self.running_model.rowCount())
        for row in rows:
            self.running_model.appendRow([QStandardItem(cell) for cell in row])

    def _selected(self, view: QTreeView) -> str | None:
        index = view.currentIndex()
        return view.model().index(index.row(), 0).data() if index.isValid() else None

    def _start(self, customize: bool) -> None:
        release = self._selected(self.available)
        if release:
            self.start_requested.emit(release, customize)

    def _unmount(self) -> None:
        release = self._selected(self.running)
        if release:
            self.unmount_requested.emit(release)
