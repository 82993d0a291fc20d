"""The Projects page's project actions: rename and delete a project (what ``vml project rename|rm`` do).

:class:`ProjectActions` is mixed into the projects controller, whose ``run``, ``window``, ``project`` and
``select_project`` it uses. Deleting asks first, with Cancel as the default button.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from ui.dialogs import TextDialog
from ui.workers import Job
from vmlog.app import projects


class ProjectActions:
    """Rename and delete the selected project."""

    def ask_rename_project(self) -> TextDialog:
        old = self.project or ""
        dialog = TextDialog(self.window, f"Rename project {old}", "New name:", old)
        return self._open(dialog, lambda: self.rename_project(old, dialog.value()))

    def rename_project(self, old: str, new: str) -> Job | None:
        if not new or new == old:
            return None
        return self.run(f"Renaming {old} to {new}", projects.rename_project, old, new, with_progress=False,
                        on_result=lambda _r: self.select_project(new))

    def ask_delete_project(self) -> QMessageBox:
        name = self.project or ""
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete project", f"Delete the project “{name}”?",
                          QMessageBox.StandardButton.Cancel, self.window)
        box.setInformativeText("Its machine, every saved state and its disks are deleted for good. The logbook"
                               " keeps its rows; exported .vmlstate files stay where they are.")
        delete = box.addButton("Delete project", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.button(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        self.active_dialog = box
        box.buttonClicked.connect(
            lambda button: button is delete and self.run(f"Deleting {name}", projects.remove_project, name,
                                                         with_progress=False)
        )
        box.open()
        return box
