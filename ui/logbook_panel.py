"""The logbook panel: a project's operations and notes, filterable, with a line to add a note."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ui.formatting import duration


class HasDict(Protocol):
    """A logbook record (an operation, a note, a sender's row) as ``vmlog.app.logbook.history()`` gives it."""

    def to_dict(self) -> dict[str, Any]: ...


COLUMNS = ("When", "Who", "What", "Outcome", "Details")
KIND_ROLE = Qt.ItemDataRole.UserRole + 20
OUTCOME_COLOURS = {"ok": "#2e9a5d", "failed": "#c0392b", "cancelled": "#d68910", "interrupted": "#c0392b"}
FILTERS = ("Everything", "Notes", "Operations", "Failures")


def _when(iso: str | None) -> str:
    """``2026-11-21T23:30:50+0000`` as ``2026-11-21 23:30`` (the rows are already in local time)."""
    return (iso or "")[:16].replace("T", " ")


@dataclass(frozen=True, slots=True)
class LogbookRow:
    """One line of the panel, its texts worked out off the UI thread (:func:`logbook_rows`)."""

    kind: str  # "note" or "operation"
    cells: tuple[str, str, str, str, str]
    haystack: str  # every cell, lower-cased, for the search box

    @property
    def failed(self) -> bool:
        return self.cells[3] in ("failed", "interrupted", "cancelled")


def logbook_rows(
    items: Sequence[dict[str, Any] | HasDict], state_names: dict[str, str] | None = None
) -> list[LogbookRow]:
    """The panel's lines for ``items`` (oldest first, as the service gives them), newest on top; plain Python, so
    a read job makes them and the UI thread only swaps them in."""
    names = state_names or {}
    rows: list[LogbookRow] = []
    for record in reversed(items):
        item = record if isinstance(record, dict) else record.to_dict()
        state = item.get("state")
        on = f" {names.get(state, state[:8])}" if state else ""
        who = item.get("who", "") + (" (sender's logbook)" if item.get("from_sender") else "")
        if item.get("kind") == "note":
            cells = (_when(item.get("created")), who, f"note{on}", "", item.get("text", ""))
            kind = "note"
        else:
            detail = item.get("message") or ""
            took = item.get("duration")
            if took is not None and item.get("outcome") != "running":
                detail = f"{detail} ({duration(took)})" if detail else duration(took)
            cells = (_when(item.get("started")), who, item.get("action", "") + on, item.get("outcome", ""), detail)
            kind = "operation"
        rows.append(LogbookRow(kind, cells, "\n".join(cells).lower()))
    return rows


def lines_key(rows: list[LogbookRow]) -> int:
    """A fingerprint of the panel's lines: equal keys, the same logbook on screen."""
    return hash((len(rows), tuple(rows)))


class LogbookModel(QAbstractTableModel):
    """The lines that pass the search text and the kind filter, cells given on demand.

    Filtering is one pass over plain rows in Python rather than a proxy asking Python about each row:
    a logbook of thousands of lines is one model reset, whatever its length.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.all_rows: list[LogbookRow] = []
        self.shown: list[LogbookRow] = []
        self.kind = "Everything"
        self.text = ""
        self.key: int | None = None  # the lines_key of all_rows, when known
        self._italic = QFont()
        self._italic.setItalic(True)

    def set_rows(self, rows: list[LogbookRow], key: int | None = None) -> None:
        """``key`` (:func:`lines_key`, worked out off the UI thread) spares comparing the lines here."""
        if (key is not None and key == self.key) or (key is None and rows == self.all_rows):
            return  # a periodic read found the same logbook: nothing to redraw
        self.all_rows = rows
        self.key = key
        self._filter()

    def set_kind(self, kind: str) -> None:
        self.kind = kind
        self._filter()

    def setFilterFixedString(self, text: str) -> None:  # noqa: N802 - the name QSortFilterProxyModel gives it
        self.text = text.lower()
        self._filter()

    def _filter(self) -> None:
        kind, text = self.kind, self.text
        shown = self.all_rows
        if kind == "Notes":
            shown = [r for r in shown if r.kind == "note"]
        elif kind == "Operations":
            shown = [r for r in shown if r.kind == "operation"]
        elif kind == "Failures":
            shown = [r for r in shown if r.failed]
        if text:
            shown = [r for r in shown if text in r.haystack]
        self.beginResetModel()
        self.shown = shown
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.shown)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, column = self.shown[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cells[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.cells[4] or None
        if role == KIND_ROLE:
            return row.kind
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            colour = OUTCOME_COLOURS.get(row.cells[3])
            return QColor(colour) if colour else None
        if role == Qt.ItemDataRole.FontRole and column == 4 and row.kind == "note":
            return self._italic
        return None


class LogbookPanel(QWidget):
    """Newest first; ``note_requested`` carries the text the user typed (the page calls the service)."""

    note_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.proxy = LogbookModel(self)  # what the table shows: the filtered lines
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter the logbook")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.kind = QComboBox()
        self.kind.addItems(FILTERS)
        self.kind.currentTextChanged.connect(self.proxy.set_kind)
        self.table = QTreeView()
        self.table.setModel(self.proxy)
        self.table.setRootIsDecorated(False)
        self.table.setUniformRowHeights(True)
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.header()
        header.setStretchLastSection(True)
        for column, width in ((0, 130), (1, 110), (2, 210), (3, 80)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.note = QLineEdit()
        self.note.setPlaceholderText("Add a note to the logbook…")
        self.note.returnPressed.connect(self._submit)
        self.add_button = QPushButton("Add note")
        self.add_button.clicked.connect(self._submit)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.kind)
        bottom = QHBoxLayout()
        bottom.addWidget(self.note, 1)
        bottom.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)

    def _submit(self) -> None:
        text = self.note.text().strip()
        if text:
            self.note_requested.emit(text)

    def note_saved(self) -> None:
        self.note.clear()

    def set_history(self, items: Sequence[dict[str, Any] | HasDict], state_names: dict[str, str] | None = None) -> None:
        """Show ``items`` (``vmlog.app.logbook.history()``, or rows as its ``to_dict()`` gives them), newest on top.

        Rows an imported state arrived with (``from_sender``) say so in the Who column: they are what
        the sender did and noted, not what happened here.
        """
        self.set_rows(logbook_rows(items, state_names))

    def set_rows(self, rows: list[LogbookRow], key: int | None = None) -> None:
        """Show lines :func:`logbook_rows` made (in a read job); ``key`` is their :func:`lines_key`."""
        self.proxy.set_rows(rows, key)

    def visible_rows(self) -> list[list[str]]:
        return [
            [self.proxy.index(r, c).data() or "" for c in range(len(COLUMNS))] for r in range(self.proxy.rowCount())
        ]
