"""The project menu's archive actions: freeze a project into one ``.vmlarchive``, and unarchive one.

The same :mod:`vmlog.app.archive` functions as ``vml project archive|unarchive``, as jobs with progress.
Unarchiving checks the whole file before writing anything; when the archived name is taken here, the
user is asked for another (the archive was verified once by then, so only the second walk remains).
:class:`ArchiveActions` is mixed into the projects controller, whose ``run``, ``window``, ``project``,
``notify``, ``select_project`` and ``_open`` it uses.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from ui.bundle_dialogs import free_name
from ui.dialogs import TextDialog
from ui.formatting import human_bytes
from ui.workers import Job
from vmlog.app import archive
from vmlog.app.types import Workspace
from vmlog.errors import AlreadyExists

ARCHIVE_FILTER = "vmlog archives (*.vmlarchive)"


def archive_file_dialog(parent: QWidget | None, title: str, start: Path, *, save: bool) -> QFileDialog:
    """Qt's own file dialog for ``.vmlarchive`` files (non-native: it opens without blocking)."""
    dialog = QFileDialog(parent, title, str(start), ARCHIVE_FILTER)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    if save:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(archive.SUFFIX.lstrip("."))
        dialog.selectFile(start.name)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    return dialog


def unarchive_or_taken(path: Path, *, name: str | None = None, ctx: Workspace | None = None,
                       progress=None) -> archive.UnarchiveResult | None:
    """The unarchived project, or None when its name is taken here (the caller asks for another)."""
    try:
        return archive.unarchive_project(path, name=name, ctx=ctx, **({"progress": progress} if progress else {}))
    except AlreadyExists:
        if name is not None:
            raise  # the name the user gave is taken too: say so
        return None


class ArchiveActions:
    """Archive the selected project; unarchive a file into a new project."""

    def ask_archive_project(self) -> QFileDialog | None:
        name = self.project
        if name is None:
            return None
        dialog = archive_file_dialog(self.window, f"Archive {name}", Path.home() / f"{name}{archive.SUFFIX}",
                                     save=True)
        self.active_dialog = dialog
        dialog.fileSelected.connect(lambda path: path and self.archive_project(name, Path(path)))
        dialog.open()
        return dialog

    def archive_project(self, name: str, dest: Path) -> Job:
        return self.run(f"Archiving {name}", archive.archive_project, name, dest, on_result=self._archived)

    def _archived(self, result: archive.ArchiveResult) -> None:
        self.last_archive = result
        self.notify("Project archived", f"Wrote {result.path.name} ({human_bytes(result.size)}): {result.states}"
                    f" states, {result.bases} base image(s).", "\n".join([f"sha256 {result.sha256}", *result.notes]))

    def ask_unarchive(self) -> QFileDialog:
        dialog = archive_file_dialog(self.window, "Unarchive a project", Path.home(), save=False)
        self.active_dialog = dialog
        dialog.fileSelected.connect(lambda path: path and self.unarchive(Path(path)))
        dialog.open()
        return dialog

    def unarchive(self, path: Path, name: str | None = None) -> Job:
        return self.run(f"Unarchiving {path.name}", unarchive_or_taken, path, name=name,
                        on_result=lambda result: self._unarchived(path, result))

    def _unarchived(self, path: Path, result: archive.UnarchiveResult | None) -> None:
        if result is None:
            self.ask_unarchive_name(path)
            return
        self.last_unarchive = result
        self.select_project(result.project, state=result.current)
        self.notify("Project unarchived", f"{path.name} is the project {result.project} ({result.states} states).",
                    "\n".join(result.notes))

    def ask_unarchive_name(self, path: Path) -> TextDialog:
        taken = self.page.projects.names()
        dialog = TextDialog(self.window, f"Unarchive {path.name}", "A project of that name exists here. New name:",
                            free_name(path.name.removesuffix(archive.SUFFIX), taken))
        return self._open(dialog, lambda: dialog.value() and self.unarchive(path, dialog.value()))
