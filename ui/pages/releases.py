"""The Releases page (layout only): Mounted, Available and Configure, with Mount and "Customize & Mount".

Mounted lists the mounted releases and the log of the selected one; Available lists what the release
sources publish; Configure lists the sources and adds new ones. :mod:`ui.controllers.releases` fills
the tables and turns the buttons into calls of :mod:`vmlog.releases`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

KEY_ROLE = Qt.ItemDataRole.UserRole + 30  # what identifies a row to the controller


@dataclass(frozen=True)
class SourceForm:
    """What the Configure tab's form holds (arguments of ``vmlog.releases.sources.make_source``)."""

    url: str
    kind: str
    key_file: str
    name: str
    pattern: str
    proxy: str


@dataclass(frozen=True)
class MountOptions:
    """Customize & Mount: where to mount, the cache and its size, the log file (empty: the defaults)."""

    at: Path | None
    cache_dir: Path | None
    cache_limit: int
    log_file: Path | None


def _table(columns: tuple[str, ...], widths: tuple[int, ...]) -> tuple[QTreeView, QStandardItemModel]:
    model = QStandardItemModel(0, len(columns))
    model.setHorizontalHeaderLabels(list(columns))
    view = QTreeView()
    view.setModel(model)
    view.setRootIsDecorated(False)
    view.setUniformRowHeights(True)
    view.setAlternatingRowColors(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    for column, width in enumerate(widths):
        view.setColumnWidth(column, width)
    view.header().setStretchLastSection(True)
    return view, model


def _fill(view: QTreeView, model: QStandardItemModel, rows: list[tuple[object, list[str]]]) -> None:
    """Replace the rows, keeping the selected key selected."""
    keep = selected_key(view)
    model.removeRows(0, model.rowCount())
    for key, cells in rows:
        items = [QStandardItem(cell) for cell in cells]
        items[0].setData(key, KEY_ROLE)
        model.appendRow(items)
    for row in range(model.rowCount()):
        if model.index(row, 0).data(KEY_ROLE) == keep:
            view.setCurrentIndex(model.index(row, 0))
            return
    if model.rowCount() and keep is None:
        view.setCurrentIndex(model.index(0, 0))


def selected_key(view: QTreeView) -> object:
    index = view.currentIndex()
    return view.model().index(index.row(), 0).data(KEY_ROLE) if index.isValid() else None


class ReleasesPage(QWidget):
    """``start_requested(key, customize)``: Mount or Customize & Mount on an Available row."""

    start_requested = Signal(object, bool)
    unmount_requested = Signal(str)
    mount_selected = Signal(str)
    source_added = Signal(object)  # a SourceForm
    source_removed = Signal(str)
    refresh_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        header, subtitle = self._header()
        running_tab = self._running_tab()
        available_tab = self._available_tab()
        configure_tab = self._configure_tab()
        self.tabs = QTabWidget()
        self.tabs.addTab(running_tab, "Mounted")
        self.tabs.addTab(available_tab, "Available")
        self.tabs.addTab(configure_tab, "Configure")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(12)
        layout.addLayout(header)
        layout.addWidget(subtitle)
        layout.addWidget(self.tabs, 1)

    # -- layout -------------------------------------------------------------------------------
    def _header(self) -> tuple[QHBoxLayout, QLabel]:
        """The title with the Refresh button, and the subtitle under them."""
        title = QLabel("Releases")
        title.setObjectName("page-title")
        subtitle = QLabel(
            "Software releases from your release sources (CernVM-FS repositories, HTTP release trees),"
            " mounted read-only and fetched on first use."
        )
        subtitle.setObjectName("page-subtitle")
        subtitle.setWordWrap(True)
        self.reload = QPushButton("Refresh")
        self.reload.clicked.connect(self.refresh_requested)
        header = QHBoxLayout()
        header.addWidget(title, 1)
        header.addWidget(self.reload)
        return header, subtitle

    def _running_tab(self) -> QWidget:
        """The mounted releases above the log of the selected one."""
        self.running, self.running_model = _table(("Release", "Revision", "Tag", "Mounted at"), (150, 80, 140))
        self.running.selectionModel().currentRowChanged.connect(self._on_mount_selected)
        self.unmount = QPushButton("Unmount")
        self.unmount.setToolTip("Unmount the selected release (vml release umount)")
        self.unmount.clicked.connect(self._unmount)
        self.log_title = QLabel("Log")
        self.log_title.setObjectName("section")
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("Select a mounted release to see its log: fetches, digest checks, errors.")
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = self.log.font()
        font.setFamily("monospace")
        self.log.setFont(font)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.running, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.unmount)
        top_layout.addLayout(row)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.log_title)
        bottom_layout.addWidget(self.log, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setChildrenCollapsible(False)
        running_tab = QWidget()
        QVBoxLayout(running_tab).addWidget(split)
        return running_tab

    def _available_tab(self) -> QWidget:
        """What the sources publish, with Mount and Customize & Mount (``vml release mount``)."""
        self.available, self.available_model = _table(
            ("Release", "Series", "Revision", "Tag", "Source"), (150, 90, 80, 140)
        )
        self.available.doubleClicked.connect(lambda _index: self._start(False))
        self.start = QPushButton("Mount")
        self.start.setToolTip("Mount the release with the default mount path, cache and log")
        self.customize = QPushButton("Customize && Mount…")
        self.customize.setToolTip("Choose the mount path, the cache directory and its size, and the log file")
        self.start.clicked.connect(lambda: self._start(False))
        self.customize.clicked.connect(lambda: self._start(True))
        self.available_note = QLabel("")
        self.available_note.setObjectName("muted")
        self.available_note.setWordWrap(True)
        available_tab = QWidget()
        available_layout = QVBoxLayout(available_tab)
        available_layout.addWidget(self.available, 1)
        available_layout.addWidget(self.available_note)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.customize)
        row.addWidget(self.start)
        available_layout.addLayout(row)
        return available_tab

    def _configure_tab(self) -> QWidget:
        """The release sources, and the form that adds one."""
        self.sources, self.sources_model = _table(("Source", "Kind", "URL", "Pattern"), (140, 80, 380))
        self.remove_source = QPushButton("Remove")
        self.remove_source.clicked.connect(self._remove_source)
        form = self._source_form()
        configure_tab = QWidget()
        configure_layout = QVBoxLayout(configure_tab)
        configure_layout.addWidget(self.sources, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.remove_source)
        configure_layout.addLayout(row)
        adding = QLabel("Add a release source")
        adding.setObjectName("section")
        configure_layout.addWidget(adding)
        configure_layout.addLayout(form)
        return configure_tab

    def _source_form(self) -> QFormLayout:
        """The fields of a new release source and its Verify and add button."""
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://cvmfs-stratum-one.example.org/cvmfs/sft.example.org")
        self.kind = QComboBox()
        self.kind.addItems(["auto", "cvmfs", "http-tree"])
        self.key_file = QLineEdit()
        self.key_file.setPlaceholderText("/etc/cvmfs/keys/example.org/example.org.pub (CernVM-FS only)")
        self.source_name = QLineEdit()
        self.source_name.setPlaceholderText("default: the last part of the URL")
        self.pattern = QLineEdit("{release}")
        self.pattern.setToolTip("Where releases are inside the source, e.g. sw/software/{series}/{release}")
        self.proxy = QLineEdit()
        self.proxy.setPlaceholderText("default: the environment's http_proxy; '' for none")
        self.add_source = QPushButton("Verify and add")
        self.add_source.clicked.connect(self._add_source)
        form = QFormLayout()
        form.addRow("URL:", self.url)
        form.addRow("Kind:", self.kind)
        form.addRow("Master key:", self.key_file)
        form.addRow("Name:", self.source_name)
        form.addRow("Pattern:", self.pattern)
        form.addRow("Proxy:", self.proxy)
        add_row = QHBoxLayout()
        add_row.addStretch(1)
        add_row.addWidget(self.add_source)
        form.addRow("", add_row)
        return form

    # -- filled by the controller -------------------------------------------------------------
    def set_available(self, rows: list[tuple[object, list[str]]], note: str = "") -> None:
        _fill(self.available, self.available_model, rows)
        self.available_note.setText(note)
        self.available_note.setVisible(bool(note))

    def set_running(self, rows: list[tuple[str, list[str]]]) -> None:
        before = selected_key(self.running)
        _fill(self.running, self.running_model, rows)
        self.unmount.setEnabled(bool(rows))
        if not rows:
            self.log_title.setText("Log")
            self.log.clear()
        elif selected_key(self.running) != before:
            self._on_mount_selected()

    def set_sources(self, rows: list[tuple[str, list[str]]]) -> None:
        _fill(self.sources, self.sources_model, rows)
        self.remove_source.setEnabled(bool(rows))

    def set_log(self, name: str, text: str) -> None:
        self.log_title.setText(f"Log of {name}")
        bar = self.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        if self.log.toPlainText() != text:
            self.log.setPlainText(text)
            if at_end:
                bar.setValue(bar.maximum())

    def running_rows(self) -> list[list[str]]:
        model = self.running_model
        return [[model.index(r, c).data() for c in range(model.columnCount())] for r in range(model.rowCount())]

    def available_rows(self) -> list[list[str]]:
        model = self.available_model
        return [[model.index(r, c).data() for c in range(model.columnCount())] for r in range(model.rowCount())]

    # -- user actions ---------------------------------------------------------------------------
    def _start(self, customize: bool) -> None:
        key = selected_key(self.available)
        if key is not None:
            self.start_requested.emit(key, customize)

    def _unmount(self) -> None:
        name = selected_key(self.running)
        if name:
            self.unmount_requested.emit(str(name))

    def _on_mount_selected(self, *_args: object) -> None:
        name = selected_key(self.running)
        if name:
            self.mount_selected.emit(str(name))

    def _add_source(self) -> None:
        self.source_added.emit(
            SourceForm(
                url=self.url.text().strip(),
                kind=self.kind.currentText(),
                key_file=self.key_file.text().strip(),
                name=self.source_name.text().strip(),
                pattern=self.pattern.text().strip() or "{release}",
                proxy=self.proxy.text(),
            )
        )

    def _remove_source(self) -> None:
        name = selected_key(self.sources)
        if name:
            self.source_removed.emit(str(name))


class CustomizeMountDialog(QDialog):
    """Mount path, cache directory and size limit, and log file of one mount (empty fields: defaults)."""

    def __init__(self, parent: QWidget | None, release: str, defaults: MountOptions) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Mount {release}")
        self.at = QLineEdit()
        self.at.setPlaceholderText(str(defaults.at or ""))
        self.cache_dir = QLineEdit()
        self.cache_dir.setPlaceholderText(str(defaults.cache_dir or ""))
        self.cache_size = QSpinBox()
        self.cache_size.setRange(16, 1 << 20)
        self.cache_size.setSingleStep(256)
        self.cache_size.setSuffix(" MiB")
        self.cache_size.setValue(max(16, defaults.cache_limit >> 20))
        self.log_file = QLineEdit()
        self.log_file.setPlaceholderText(str(defaults.log_file or ""))
        form = QFormLayout()
        form.addRow("Mount at:", self.at)
        form.addRow("Cache directory:", self.cache_dir)
        form.addRow("Cache size limit:", self.cache_size)
        form.addRow("Log file:", self.log_file)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Mount")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(620, self.sizeHint().height())

    def options(self) -> MountOptions:
        def path(edit: QLineEdit) -> Path | None:
            text = edit.text().strip()
            return Path(text).expanduser() if text else None

        return MountOptions(path(self.at), path(self.cache_dir), self.cache_size.value() << 20, path(self.log_file))

