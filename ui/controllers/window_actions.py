"""The menu bar's window-wide actions: a new project, catalogs, stored images, mail settings, context templates,
refreshing.

Each is the use case the matching ``vml`` command calls (``project new``, ``catalog add``, ``appliance rm``,
the mail settings), in a job; failures reach the jobs panel like every other job's.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from ui.context_templates import ContextTemplatesDialog
from ui.dialogs import TextDialog
from ui.mail_dialog import MailSettingsDialog, RemoveImageDialog
from ui.workers import Job, when_alive
from vmlog.app import appliances, mail


class WindowActions(QObject):
    """Connects ``window.menu_actions`` to the controllers and the use cases."""

    def __init__(self, window: Any, *, ctx: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self.ctx = ctx
        self.active_dialog: Any = None
        actions = window.menu_actions
        actions["new-project"].triggered.connect(self.new_project)
        actions["add-catalog"].triggered.connect(self.ask_add_catalog)
        actions["remove-image"].triggered.connect(self.ask_remove_image)
        actions["mail-settings"].triggered.connect(self.ask_mail_settings)
        actions["context-templates"].triggered.connect(self.show_context_templates)
        actions["refresh"].triggered.connect(self.refresh)

    def _open(self, dialog: Any, on_accept: Any) -> Any:
        self.active_dialog = dialog
        dialog.accepted.connect(on_accept)
        dialog.open()
        return dialog

    def _run(self, title: str, fn: Any, *args: Any, on_result: Any = None, **kwargs: Any) -> Job:
        job = Job(fn, *args, title=title, pass_cancel=False, pass_progress=False, ctx=self.ctx, **kwargs)
        if on_result is not None:
            job.signals.finished.connect(when_alive(self, on_result))
        job.signals.done.connect(when_alive(self, self.refresh))
        return self.window.runner.start(job)

    def new_project(self) -> Any:
        self.window.show_page("Appliances")
        return self.window.appliances_controller.ask_new_project()

    def refresh(self) -> None:
        self.window.projects_controller.refresh()
        self.window.appliances_controller.refresh()

    def show_context_templates(self) -> ContextTemplatesDialog:
        dialog = ContextTemplatesDialog(self.window, ctx=self.ctx)
        self.active_dialog = dialog
        dialog.open()
        return dialog

    def ask_add_catalog(self) -> TextDialog:
        dialog = TextDialog(self.window, "Add a catalog", "Catalog URL:")
        dialog.edit.setPlaceholderText("https://example.org/appliances/catalog.json")
        return self._open(dialog, lambda: dialog.value() and self.add_catalog(dialog.value()))

    def add_catalog(self, location: str) -> Job:
        return self._run(f"Adding the catalog {location}", appliances.add_catalog, location)

    def ask_remove_image(self) -> Job:
        def read(progress=None, ctx=None) -> list[Any]:
            return appliances.list_images(ctx=ctx)

        job = Job(read, title="Reading the image store", pass_cancel=False, ctx=self.ctx)
        job.signals.finished.connect(when_alive(self, self._pick_image))
        return self.window.runner.start(job)

    def _pick_image(self, rows: list[Any]) -> RemoveImageDialog:
        dialog = RemoveImageDialog(self.window, rows)
        return self._open(dialog, lambda: dialog.choice() and self.remove_image(dialog.choice()))

    def remove_image(self, sha256: str) -> Job:
        return self._run("Removing a stored image", appliances.remove_image, sha256)

    def ask_mail_settings(self) -> MailSettingsDialog:
        dialog = MailSettingsDialog(self.window, mail.load_settings(self.ctx))
        return self._open(dialog, lambda: self.save_mail_settings(dialog.settings()))

    def save_mail_settings(self, settings: mail.SmtpSettings | None) -> Job | None:
        if settings is None:
            return None
        return self._run("Saving the mail settings", mail.save_settings, settings)
