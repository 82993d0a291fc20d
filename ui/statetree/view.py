"""The state tree view: branch lines and dots painted in the first column, like a snapshot pane.

Each lane has its own colour; the current state is a filled dot with a ring, the "now" node a
hollow dot in the highlight colour. A line forks from a state to each later child, so branches read
at a glance even when the history is thousands of states long.
"""

from __future__ import annotations

from PySide6.QtCore import QLineF, QModelIndex, QPersistentModelIndex, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
)

from ui.statetree.layout import TreeRow
from ui.statetree.model import ROW_ROLE, STATE_ID_ROLE, StateTreeModel

LANE = 18  # px per lane
DOT = 9  # px diameter of a state's dot
ROW_HEIGHT = 28
LANE_COLOURS = ("#3874cb", "#2e9a5d", "#c0392b", "#8e44ad", "#d68910", "#16a085", "#7f8c8d")


NAME_ROOM = 150  # px of the tree column kept for a state's name however many lanes the graph has


def lane_colour(lane: int) -> QColor:
    return QColor(LANE_COLOURS[lane % len(LANE_COLOURS)])


def _lane_pen(colour: QColor) -> QPen:
    pen = QPen(colour, 2)
    pen.setCapStyle(Qt.PenCapStyle.FlatCap)
    return pen


class StateGraphDelegate(QStyledItemDelegate):
    """Paints the lanes, the dot and the name of a row in the tree column.

    Names start after the widest row's lanes, so they line up in one column like a table's.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.graph_lanes = 1
        self.pens = tuple(_lane_pen(QColor(colour)) for colour in LANE_COLOURS)  # made once, not per line

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        width = hint.width() + self.graph_lanes * LANE + 8
        return QSize(width, max(hint.height(), ROW_HEIGHT))

    def lanes_shown(self, width: float) -> int:
        """Lanes drawn in a column ``width`` wide: the graph leaves room for the names (far lanes are cut)."""
        return max(1, min(self.graph_lanes, int((width - NAME_ROOM) // LANE)))

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        row: TreeRow = index.siblingAtColumn(0).data(ROW_ROLE)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else None
        text = opt.text
        opt.text = ""
        if style is not None:  # background and selection the way the platform draws them
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        rect = QRectF(opt.rect)
        shown = self.lanes_shown(rect.width())
        graph_width = shown * LANE + 10
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self._paint_graph(painter, rect, row, opt.palette, shown)
        painter.restore()

        text_rect = rect.adjusted(graph_width, 0, -4, 0)
        painter.save()
        font = QFont(opt.font)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        colour = opt.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        if row.is_current or row.is_now:
            font.setBold(True)
        if row.node is not None and not row.node.name:
            colour = opt.palette.color(QPalette.ColorRole.PlaceholderText) if not selected else colour
        if row.is_now and not selected:
            colour = opt.palette.color(QPalette.ColorRole.Highlight)
        painter.setFont(font)
        painter.setPen(colour)
        elided = painter.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, int(text_rect.width()))
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), elided)
        painter.restore()

    def _paint_graph(self, painter: QPainter, rect: QRectF, row: TreeRow, palette: QPalette, shown: int) -> None:
        top, bottom = rect.top(), rect.bottom() + 1
        mid = rect.center().y()
        pens = self.pens

        def x_of(lane: int) -> float:
            return rect.left() + 6 + lane * LANE + LANE / 2

        def pen(lane: int) -> QPen:
            return pens[lane % len(pens)]

        # lines passing the row, one drawLines call per colour: a deep history can pass a hundred lanes
        passing: dict[int, list[QLineF]] = {}
        for lane in row.through:
            if lane < shown:
                x = x_of(lane)
                passing.setdefault(lane % len(pens), []).append(QLineF(x, top, x, bottom))
        for colour_number, lines in passing.items():
            painter.setPen(pens[colour_number])
            painter.drawLines(lines)
        if row.lane >= shown:
            return  # the dot is on a lane cut off at the column's edge
        x = x_of(row.lane)
        if row.from_above:
            painter.setPen(pen(row.lane))
            painter.drawLine(QPointF(x, top), QPointF(x, mid))
        for lane in row.down:
            if lane >= shown:
                continue
            painter.setPen(pen(lane))
            if lane == row.lane:
                painter.drawLine(QPointF(x, mid), QPointF(x, bottom))
            else:  # a branch: curve from the dot out to its lane, then down
                path = QPainterPath(QPointF(x, mid))
                tx = x_of(lane)
                path.cubicTo(QPointF(tx, mid), QPointF(tx, mid), QPointF(tx, bottom))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawPath(path)
        colour = lane_colour(row.lane)
        centre = QPointF(x, mid)
        if row.is_now:
            highlight = palette.color(QPalette.ColorRole.Highlight)
            painter.setPen(QPen(highlight, 2))
            painter.setBrush(QBrush(palette.color(QPalette.ColorRole.Base)))
            painter.drawEllipse(centre, DOT / 2 + 1, DOT / 2 + 1)
            if row.dirty:
                painter.setBrush(QBrush(highlight))
                painter.setPen(Qt.PenStyle.NoPen)
                painter.drawEllipse(centre, 2.5, 2.5)
            return
        painter.setPen(QPen(colour.darker(130), 1))
        painter.setBrush(QBrush(colour))
        painter.drawEllipse(centre, DOT / 2, DOT / 2)
        if row.is_current:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(colour, 2))
            painter.drawEllipse(centre, DOT / 2 + 3, DOT / 2 + 3)


class StateTreeView(QTreeView):
    """The tree of a project's states; emits the selected state's id ("" for the now node)."""

    state_selected = Signal(str)
    state_activated = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.state_model = StateTreeModel(self)
        self._shown_key: int | None = None  # the layout_key of the rows on show
        self.setModel(self.state_model)
        self.graph = StateGraphDelegate(self)
        self.setItemDelegateForColumn(0, self.graph)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)  # keeps a 5,000-state tree instant
        self.setItemsExpandable(False)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAllColumnsShowFocus(True)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 240), (1, 130), (2, 130), (4, 80)):
            self.setColumnWidth(column, width)
        self.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.doubleClicked.connect(lambda index: self.state_activated.emit(index.data(STATE_ID_ROLE)))

    def set_states(self, nodes, current, *, dirty: bool = False, rows: list[TreeRow] | None = None,
                   lanes: int | None = None, row_of: dict[str, int] | None = None, key: int | None = None,
                   sizes_known: bool | None = None) -> None:
        """Show ``nodes``; ``rows`` (``lanes``, ``row_of``) are their layout if it was done already, off the UI thread.

        ``key`` identifies the layout (:func:`ui.statetree.model.layout_key`): a periodic read that finds the same
        tree again costs the UI thread nothing, not a model reset of thousands of rows.
        """
        keep = self.selected_state()
        if key is not None and key == self._shown_key:
            return
        self._shown_key = key
        if rows is None:
            self.state_model.set_states(nodes, current, dirty=dirty)
        else:
            self.state_model.set_rows(rows, lanes, row_of)
        self.graph.graph_lanes = self.state_model.max_lanes()
        self.setColumnWidth(0, max(220, min(520, self.graph.graph_lanes * LANE + 170)))
        # the size column only appears once the service reports layer sizes
        if sizes_known is None:
            sizes_known = not nodes or any(n.layer_bytes is not None for n in nodes)
        self.setColumnHidden(4, not sizes_known)
        target = keep if keep is not None and self.state_model.row_of(keep) is not None else ""
        self.select_state(target)

    def select_state(self, state_id: str) -> None:
        row = self.state_model.row_of(state_id)
        if row is None:
            return
        index = self.state_model.index(row, 0)
        self.setCurrentIndex(index)
        self.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)

    def selected_state(self) -> str | None:
        index = self.currentIndex()
        return index.data(STATE_ID_ROLE) if index.isValid() else None

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.state_selected.emit(current.data(STATE_ID_ROLE))
