"""The item model behind the state tree view: one row per laid-out state, five columns."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt

from ui.formatting import human_bytes, local_time
from ui.statetree.layout import StateNode, TreeRow, lay_out

ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the TreeRow of an index
STATE_ID_ROLE = Qt.ItemDataRole.UserRole + 2  # the state id ("" for the now row)

COLUMNS = ("State", "Saved", "Author", "Message", "Layer")
Index = QModelIndex | QPersistentModelIndex


class StateTreeModel(QAbstractItemModel):
    """A flat list of :class:`TreeRow`; the tree shape lives in the lanes the delegate draws."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[TreeRow] = []
        self._row_of: dict[str, int] = {}

    def set_states(self, nodes: list[StateNode], current: str | None, *, dirty: bool = False) -> None:
        self.beginResetModel()
        self.rows = lay_out(nodes, current, dirty=dirty)
        self._row_of = {("" if r.node is None else r.node.id): i for i, r in enumerate(self.rows)}
        self.endResetModel()

    def row_of(self, state_id: str) -> int | None:
        return self._row_of.get(state_id)

    def max_lanes(self) -> int:
        return max((row.lanes for row in self.rows), default=1)

    # -- QAbstractItemModel ---------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        if parent.isValid() or not (0 <= row < len(self.rows)) or not (0 <= column < len(COLUMNS)):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, index: Index = QModelIndex()):  # type: ignore[override]
        return QModelIndex()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == ROW_ROLE:
            return row
        if role == STATE_ID_ROLE:
            return "" if row.node is None else row.node.id
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole and row.node is not None:
            return f"{row.node.id}\n{row.node.message}" if row.node.message else row.node.id
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 4:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(row: TreeRow, column: int) -> str:
        node = row.node
        if node is None:
            if column == 0:
                return "Now (unsaved changes)" if row.dirty else "Now"
            if column == 3:
                return "the running machine; save to keep it" if row.dirty else ""
            return ""
        if column == 0:
            return node.name or node.id[:8]
        if column == 1:
            return local_time(node.created)
        if column == 2:
            return node.author
        if column == 3:
            return node.message.splitlines()[0] if node.message else ""
        if column == 4:
            return human_bytes(node.layer_bytes)
        return ""
