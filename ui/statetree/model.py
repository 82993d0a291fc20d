"""The item model behind the state tree view: one row per laid-out state, five columns.

Built on ``QStandardItemModel``: the items keep their text on the C++ side, so painting and
scrolling a 5,000-state tree never calls back into Python for each cell and role.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from ui.formatting import human_bytes, local_time
from ui.statetree.layout import StateNode, TreeRow, lay_out

ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the TreeRow of an index
STATE_ID_ROLE = Qt.ItemDataRole.UserRole + 2  # the state id ("" for the now row)

COLUMNS = ("State", "Saved", "Author", "Message", "Layer")
MEMORY_MARK = "  \u25cf memory"  # after the name of a state that holds the machine's memory
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


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


class StateTreeModel(QStandardItemModel):
    """A flat list of :class:`TreeRow`; the tree shape lives in the lanes the delegate draws."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.rows: list[TreeRow] = []
        self._row_of: dict[str, int] = {}

    def set_states(self, nodes: list[StateNode], current: str | None, *, dirty: bool = False) -> None:
        self.rows = lay_out(nodes, current, dirty=dirty)
        self._row_of = {("" if r.node is None else r.node.id): i for i, r in enumerate(self.rows)}
        self.beginResetModel()
        self.blockSignals(True)
        self.setRowCount(0)
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        for row in self.rows:
            state_id = "" if row.node is None else row.node.id
            tip = (f"{row.node.id}\n{row.node.message}" if row.node.message else row.node.id) if row.node else ""
            if row.node is not None and row.node.memory:
                tip += "\nwith the machine's memory: restoring it resumes the running machine"
            items = []
            for column, text in enumerate(row_texts(row)):
                item = QStandardItem(text)
                item.setFlags(flags)
                item.setData(state_id, STATE_ID_ROLE)
                if tip:
                    item.setToolTip(tip)
                if column == 4:
                    item.setTextAlignment(RIGHT)
                items.append(item)
            items[0].setData(row, ROW_ROLE)
            self.appendRow(items)
        self.blockSignals(False)
        self.endResetModel()

    def row_of(self, state_id: str) -> int | None:
        return self._row_of.get(state_id)

    def max_lanes(self) -> int:
        return max((row.lanes for row in self.rows), default=1)
