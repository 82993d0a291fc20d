"""The Set up dialog with a choice of context template: the built-in ones (CernVM's public contexts) first, then yours.

The template is filled for the project's name when the dialog is accepted, by the same use case
``vml setup --context NAME`` calls; the service then gets the resulting context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QWidget

from ui.settings_dialogs import SetupDialog
from vmlog.app import contexts

if TYPE_CHECKING:
    from vmlog.app.setup_project import Workspace

DEFAULT_CONTEXT_LABEL = "Default: your login name and SSH key"


class ContextSetupDialog(SetupDialog):
    """Set up's name, CPUs and memory, and the context template the new VM is contextualised with."""

    def __init__(self, parent: QWidget | None, appliance: str, taken: set[str], *, ctx: Workspace | None = None,
                 cpus: int = 1, memory_mib: int = 1024) -> None:  # fmt: skip
        super().__init__(parent, appliance, taken, cpus=cpus, memory_mib=memory_mib)
        self.ctx = ctx
        self.context = QComboBox()
        self.context.addItem(DEFAULT_CONTEXT_LABEL, None)
        for row in contexts.list_templates(ctx=ctx):
            if row.problem is not None:
                continue  # a hand-broken file is shown by `vml context list`, not offered
            label = f"{row.name} (built-in)" if row.builtin else row.name
            self.context.addItem(label, row.name)
            self.context.setItemData(self.context.count() - 1, row.description, Qt.ItemDataRole.ToolTipRole)
        self.context.setToolTip("What the new VM is told at first boot: its user, SSH key, CernVM-FS repositories")
        form = self.findChild(QFormLayout)
        if form is not None:
            form.addRow("Context:", self.context)

    def template_names(self) -> list[str]:
        """The templates offered, in their order (after the default)."""
        return [self.context.itemData(i) for i in range(1, self.context.count())]

    def choose_template(self, name: str) -> None:
        self.context.setCurrentIndex(self.context.findData(name))

    def values(self) -> dict[str, object]:
        """The setup options; with a template chosen, ``context`` is the template filled for the project."""
        values = super().values()
        template = self.context.currentData()
        if template is not None:
            project = str(values["name"])
            values["context"] = contexts.context_for_project(project, template=template, ctx=self.ctx).context
        return values
