"""The item model behind the state tree view: one row per laid-out state, six columns, cells made on demand."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from ui.formatting import human_bytes, local_time
from ui.statetree.checks import CHECK_ROLES, CHECKS_TITLE, CheckMark, check_cell
from ui.statetree.layout import StateNode, TreeRow, lay_out

ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the TreeRow of an index
STATE_ID_ROLE = Qt.ItemDataRole.UserRole + 2  # the state id ("" for the now row)

COLUMNS = ("State", "Saved", "Author", "Message", "Layer", CHECKS_TITLE)
CHECKS_COLUMN = 5
MEMORY_MARK = "  \u25cf memory"  # after the name of a state that holds the machine's memory
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
RIGHT_VALUE = int(RIGHT.value)
FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable  # once: Qt asks for every cell of a selected row


def row_texts(row: TreeRow) -> list[str]:
    node = row.node
    if node is None:
        return ["Now (unsaved changes)" if row.dirty else "Now", "", "",
                "the running machine; save to keep it" if row.dirty else "", ""]
    return [
        (node.name or node.id[:8]) + (MEMORY_MARK if node.memory else ""),
        local_time(node.created),
        node.author,
        node.message.splitlines()[0] if node.message else "",
        human_bytes(node.layer_bytes),
    ]


class StateTreeModel(QAbstractTableModel):
    """A flat list of :class:`TreeRow`; the tree shape lives in the lanes the delegate draws.

    Cells are computed when the view asks for them, i.e. for the rows on screen only: loading a
    5,000-state tree is one model reset, whatever its length. The rows can be laid out off the UI
    thread (:func:`lay_out` is plain Python) and handed in with :meth:`set_rows`.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[TreeRow] = []
        self._row_of: dict[str, int] = {}
        self._texts: dict[int, list[str]] = {}
        self._lanes = 1
        self.check_marks: dict[str, CheckMark] = {}  # state id -> its last check results (ui.statetree.checks)

    def set_states(self, nodes: list[StateNode], current: str | None, *, dirty: bool = False) -> None:
        self.set_rows(lay_out(nodes, current, dirty=dirty))

    def set_rows(self, rows: list[TreeRow], lanes: int | None = None, row_of: dict[str, int] | None = None) -> None:
        """Show laid-out ``rows``; ``lanes`` (their widest row) and ``row_of`` (:func:`index_rows`) when worked
        out already, off the UI thread, so the UI thread's part is the reset alone."""
        self.beginResetModel()
        self.rows = rows
        self._row_of = row_of if row_of is not None else index_rows(rows)
        self._texts = {}
        self._lanes = lanes if lanes is not None else max_lanes(rows)
        self.endResetModel()

    # -- the Qt model ------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        return FLAGS

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        number, row = index.row(), self.rows[index.row()]
        if index.column() == CHECKS_COLUMN and role in CHECK_ROLES:
            return None if row.node is None else check_cell(self.check_marks.get(row.node.id), role)
        if role == Qt.ItemDataRole.DisplayRole:
            texts = self._texts.get(number)
            if texts is None:
                texts = self._texts[number] = row_texts(row)
            return texts[index.column()]
        if role == STATE_ID_ROLE:
            return "" if row.node is None else row.node.id
        if role == ROW_ROLE:
            return row if index.column() == 0 else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 4:
            return RIGHT_VALUE
        return None

    def row_of(self, state_id: str) -> int | None:
        return self._row_of.get(state_id)

    def max_lanes(self) -> int:
        return self._lanes


def index_rows(rows: list[TreeRow]) -> dict[str, int]:
    """The row number of each state id ("" for the now row)."""
    return {("" if r.node is None else r.node.id): i for i, r in enumerate(rows)}


def layout_key(rows: list[TreeRow]) -> int:
    """A fingerprint of laid-out rows (worked out off the UI thread): equal keys, the same tree on screen."""
    return hash((len(rows), tuple(rows)))


def max_lanes(rows: list[TreeRow]) -> int:
    return max((row.lanes for row in rows), default=1)


def _tooltip(row: TreeRow) -> str | None:
    node = row.node
    if node is None:
        return None
    tip = f"{node.id}\n{node.message}" if node.message else node.id
    if node.memory:
        tip += "\nwith the machine's memory: restoring it resumes the running machine"
    return tip
