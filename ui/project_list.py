"""The project sidebar: each project with its machine state, backend, base appliance and disk use."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from ui.formatting import human_bytes

SUMMARY_ROLE = Qt.ItemDataRole.UserRole + 10
STATE_COLOURS = {
    "running": "#2e9a5d",
    "paused": "#d68910",
    "saved": "#3874cb",
    "stopped": "#95a5a6",
    "crashed": "#c0392b",
    "transitioning": "#d68910",
    "unknown": "#95a5a6",
}


@dataclass(frozen=True)
class ProjectSummary:
    """What the sidebar shows of one project (filled from the project service's listing)."""

    name: str
    vm_state: str  # a hypervisors.base.VMState value
    backend: str
    base: str  # "name version" of the base appliance
    disk_bytes: int | None
    states: int = 0
    vm_reason: str | None = None  # why the state is unknown (its backend could not be asked)

    @property
    def tooltip(self) -> str:
        state = f"{self.vm_state} ({self.vm_reason})" if self.vm_reason else self.vm_state
        return f"{self.name}: {state}, {self.states} saved states"


class ProjectDelegate(QStyledItemDelegate):
    """Two lines per project: a state dot and the name, then backend · base · disk use."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        line = option.fontMetrics.height()
        return QSize(220, 2 * line + 22)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        summary: ProjectSummary = index.data(SUMMARY_ROLE)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        if summary is None:
            return
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        text = opt.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlphaF(0.7)
        rect = QRectF(opt.rect).adjusted(12, 8, -10, -8)
        line = opt.fontMetrics.height()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(QColor(STATE_COLOURS.get(summary.vm_state, "#95a5a6"))))
        painter.drawEllipse(QRectF(rect.left(), rect.top() + line / 2 - 4, 8, 8))
        bold = QFont(opt.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(text)
        name_rect = QRectF(rect.left() + 16, rect.top(), rect.width() - 16, line)
        state_width = painter.fontMetrics().horizontalAdvance(summary.vm_state) + 4
        name = painter.fontMetrics().elidedText(
            summary.name, Qt.TextElideMode.ElideRight, int(name_rect.width() - state_width)
        )
        painter.drawText(
            name_rect.adjusted(0, 0, -state_width, 0),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            name,
        )
        painter.setFont(opt.font)
        painter.setPen(muted)
        painter.drawText(name_rect, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), summary.vm_state)
        detail = " · ".join(
            part for part in (summary.backend, summary.base, human_bytes(summary.disk_bytes)) if part
        )
        detail_rect = QRectF(rect.left() + 16, rect.top() + line + 4, rect.width() - 16, line)
        painter.drawText(
            detail_rect,
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            opt.fontMetrics.elidedText(detail, Qt.TextElideMode.ElideRight, int(detail_rect.width())),
        )
        painter.restore()


class ProjectList(QListWidget):
    """The sidebar list; emits the selected project's name."""

    project_selected = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setItemDelegate(ProjectDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)
        self.setMinimumWidth(180)
        self.currentItemChanged.connect(self._on_current)

    def set_projects(self, summaries: list[ProjectSummary], *, select: str | None = None) -> None:
        """Show ``summaries``; select ``select`` if given and listed, else keep the user's selection."""
        names = [s.name for s in summaries]
        keep = select if select in names else self.selected_project()
        was_blocked = self.blockSignals(True)  # a refresh is not the user picking a project
        self.clear()
        for summary in summaries:
            item = QListWidgetItem(summary.name)
            item.setData(SUMMARY_ROLE, summary)
            item.setToolTip(summary.tooltip)
            self.addItem(item)
        if keep in names:
            self.setCurrentRow(names.index(keep))
        elif names:
            self.setCurrentRow(0)
        self.blockSignals(was_blocked)

    def update_project(self, summary: ProjectSummary) -> bool:
        """Show new facts of one listed project in place (selection untouched); False if it is not listed."""
        for row in range(self.count()):
            item = self.item(row)
            if item.data(SUMMARY_ROLE).name == summary.name:
                item.setData(SUMMARY_ROLE, summary)
                item.setToolTip(summary.tooltip)
                return True
        return False

    def names(self) -> list[str]:
        """The listed projects' names, in sidebar order."""
        return [self.item(row).data(SUMMARY_ROLE).name for row in range(self.count())]

    def summary(self, name: str) -> ProjectSummary | None:
        for row in range(self.count()):
            summary = self.item(row).data(SUMMARY_ROLE)
            if summary.name == name:
                return summary
        return None

    def selected_project(self) -> str | None:
        item = self.currentItem()
        return item.data(SUMMARY_ROLE).name if item is not None else None

    def _on_current(self, current: QListWidgetItem | None, _previous) -> None:
        if current is not None:
            self.project_selected.emit(current.data(SUMMARY_ROLE).name)
