"""The logbook panel: a project's operations and notes, filterable, with a line to add a note."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QStandardItem, QStandardItemModel
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


class LogbookFilter(QSortFilterProxyModel):
    """Text search over every column plus a kind filter (notes, operations, failures)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.kind = "Everything"
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)

    def set_kind(self, kind: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt 6.9+: invalidateRowsFilter() is deprecated there
            self.beginFilterChange()
            self.kind = kind
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.kind = kind
            self.invalidateRowsFilter()

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        item = self.sourceModel().index(source_row, 0, source_parent)
        kind = item.data(KIND_ROLE)
        outcome = self.sourceModel().index(source_row, 3, source_parent).data()
        if self.kind == "Notes" and kind != "note":
            return False
        if self.kind == "Operations" and kind != "operation":
            return False
        if self.kind == "Failures" and outcome not in ("failed", "interrupted", "cancelled"):
            return False
        return super().filterAcceptsRow(source_row, source_parent)


class LogbookPanel(QWidget):
    """Newest first; ``note_requested`` carries the text the user typed (the page calls the service)."""

    note_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.source = QStandardItemModel(0, len(COLUMNS), self)
        self.source.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = LogbookFilter(self)
        self.proxy.setSourceModel(self.source)
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
        names = state_names or {}
        self.source.removeRows(0, self.source.rowCount())
        for record in reversed(items):
            item = record if isinstance(record, dict) else record.to_dict()
            state = item.get("state")
            on = f" {names.get(state, state[:8])}" if state else ""
            who = item.get("who", "") + (" (sender's logbook)" if item.get("from_sender") else "")
            if item.get("kind") == "note":
                cells = [_when(item.get("created")), who, f"note{on}", "", item.get("text", "")]
                kind = "note"
            else:
                detail = item.get("message") or ""
                took = item.get("duration")
                if took is not None and item.get("outcome") != "running":
                    detail = f"{detail} ({duration(took)})" if detail else duration(took)
                cells = [_when(item.get("started")), who, item.get("action", "") + on,
                         item.get("outcome", ""), detail]
                kind = "operation"
            row = [QStandardItem(text) for text in cells]
            row[0].setData(kind, KIND_ROLE)
            if kind == "note":
                font = row[4].font()
                font.setItalic(True)
                row[4].setFont(font)
            colour = OUTCOME_COLOURS.get(cells[3])
            if colour:
                row[3].setForeground(QColor(colour))
            for cell in row:
                cell.setToolTip(cells[4])
            self.source.appendRow(row)

    def visible_rows(self) -> list[list[str]]:
        return [
            [self.proxy.index(r, c).data() or "" for c in range(len(COLUMNS))] for r in range(self.proxy.rowCount())
        ]
