"""A read-only view of the home's context templates: each one's name, kind and text, as ``vml context show`` gives.

Templates are what Set up offers in its Context choice; they are made and edited with ``vml context new|edit``.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vmlog.app import contexts
from vmlog.app.types import Workspace
from vmlog.errors import VmlogError

NAME_ROLE = Qt.ItemDataRole.UserRole + 1


class ContextTemplatesDialog(QDialog):
    """The templates on the left (built-in ones first), the chosen one's kind, variables and text on the right."""

    def __init__(self, parent: QWidget | None, *, ctx: Workspace | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Context templates")
        self.list = QListWidget()
        for row in contexts.list_templates(ctx=ctx):
            label = f"{row.name} (built-in)" if row.builtin else row.name
            item = QListWidgetItem(label if row.problem is None else f"{label}: unreadable")
            item.setData(NAME_ROLE, row.name)
            item.setToolTip(row.problem or row.description)
            self.list.addItem(item)
        self.about = QLabel("")
        self.about.setWordWrap(True)
        self.about.setTextFormat(Qt.TextFormat.RichText)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.about)
        right_layout.addWidget(self.text, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(right)
        split.setSizes([220, 560])
        hint = QLabel("Set up offers these as its Context. Make or change one in a terminal: `vml context new NAME`,"
                      " `vml context edit NAME`.")
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(split, 1)
        layout.addWidget(hint)
        layout.addWidget(buttons)
        self.list.currentItemChanged.connect(
            lambda item, _old: item is not None and self.show_template(item.data(NAME_ROLE))
        )
        if self.list.count():
            self.list.setCurrentRow(0)
        self.resize(820, 520)

    def names(self) -> list[str]:
        return [self.list.item(i).data(NAME_ROLE) for i in range(self.list.count())]

    def show_template(self, name: str) -> None:
        """Show template ``name`` (a file that no longer parses shows why instead)."""
        try:
            details = contexts.show_template(name, ctx=self.ctx)
        except VmlogError as exc:
            self.about.setText(f"<b>{html.escape(name)}</b><br>{html.escape(exc.message)}")
            self.text.setPlainText("")
            return
        about = details.summary
        facts = [f"kind {about.kind}" if about.kind else "", "built-in" if about.builtin else (about.path or ""),
                 f"variables: {', '.join(about.variables)}" if about.variables else ""]
        self.about.setText(f"<b>{html.escape(about.name)}</b> · {html.escape(' · '.join(f for f in facts if f))}"
                           + (f"<br>{html.escape(about.description)}" if about.description else ""))
        self.text.setPlainText(details.text)
