"""The Projects page's bundle actions: export a state, mail it, import a bundle (verified before anything is written).

The same :mod:`vmlog.app.exchange` functions as ``vml state export|import|send``;
:class:`ExchangeActions` is mixed into the projects controller, whose ``run``, ``view``,
``project`` and ``_label`` it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from ui.bundle_dialogs import PUSH_INSTEAD, ExportDialog, ImportDialog, MailDialog, file_dialog
from ui.formatting import human_bytes
from ui.workers import Job, when_alive
from vmlog.app import exchange, mail
from vmlog.app.types import Workspace


class ExchangeActions:
    """Turns the export, mail and import buttons (and dropped files) into exchange use cases."""

    def _ancestors(self, state_id: str) -> list[tuple[str, str]]:
        """(label, id) of the states ``state_id`` was saved after, nearest first (the "since" choices)."""
        parents = {n.id: n.parent for n in self.view.nodes} if self.view else {}
        chain, at = [], parents.get(state_id)
        while at is not None and at in parents and len(chain) < 1000:
            chain.append((self._label(at), at))
            at = parents.get(at)
        return chain

    def ask_export(self, state_id: str) -> ExportDialog:
        default = Path.home() / f"{self.project}-{self._label(state_id)}{exchange.SUFFIX}"
        dialog = ExportDialog(self.window, self._label(state_id), default, self._ancestors(state_id), has_memory=True)
        self._open(dialog, lambda: self.export_state(state_id, **dialog.values()))
        # after _open's own finished slot, so the push dialog stays the active one
        dialog.finished.connect(lambda code: code == PUSH_INSTEAD and self.ask_push(state_id))
        return dialog

    def export_state(
        self, state_id: str, dest: Path, *, since: str | None = None, with_memory: bool = False, sign: bool = True
    ) -> Job:
        return self.run(
            f"Exporting {self._label(state_id)}", exchange.export_state, self.project, state_id, Path(dest),
            since=since, with_memory=with_memory, sign=sign, on_result=self._exported,
        )

    def _exported(self, result: exchange.ExportResult) -> None:
        self.last_export = result
        limit = mail.MAIL_ATTACHMENT_LIMIT // 1_000_000
        verdict = (
            f"It fits a {limit} MB mail attachment."
            if result.fits_mail
            else f"It is too large for a {limit} MB mail attachment: share it another way, or export only"
            " the changes since a state the recipient has."
        )
        self.notify("State exported", f"Wrote {result.path.name} ({human_bytes(result.size)}). {verdict}",
                    str(result.path))

    def ask_mail(self, state_id: str) -> MailDialog:
        dialog = MailDialog(self.window, self._label(state_id), mail.smtp_host(self.ctx))
        return self._open(dialog, lambda: self.mail_state(state_id, *dialog.values()))

    def mail_state(self, state_id: str, to: str, client: bool = False) -> Job:
        return self.run(
            f"Mailing {self._label(state_id)} to {to}", exchange.send_state, self.project, state_id, to,
            client=client, on_result=self._mailed,
        )

    def _mailed(self, result: exchange.SendResult) -> None:
        how = "handed to your mail program" if result.via == "client" else "sent"
        self.notify("State shared", f"{result.export.path.name} ({human_bytes(result.export.size)}) {how}"
                    f" for {result.to}.", "\n".join(result.notes))

    def ask_import(self) -> QFileDialog:
        dialog = file_dialog(self.window, "Import state", Path.home(), save=False)
        self.active_dialog = dialog
        dialog.fileSelected.connect(lambda path: path and self.import_bundle(Path(path)))
        dialog.open()
        return dialog

    def import_bundle(self, path: Path) -> Job:
        """Verify the bundle's header (nothing written), then ask where it goes and whether to trust its signer.

        The layers' digests are checked by the import, in the one pass that writes them.
        """

        def verify(progress=None) -> tuple[Any, dict[str, Any]]:
            reader = exchange.open_bundle(Path(path), ctx=self.ctx)
            return reader, exchange.describe_bundle(reader.verify_header(), ctx=self.ctx)

        job = Job(verify, title=f"Verifying {Path(path).name}", pass_cancel=False)
        job.signals.finished.connect(when_alive(self, lambda found: self.ask_import_target(Path(path), *found)))
        return self.runner.start(job)

    def ask_import_target(self, path: Path, reader: Any, about: dict[str, Any]) -> ImportDialog:
        names = [self.page.projects.item(r).text() for r in range(self.page.projects.count())]
        dialog = ImportDialog(self.window, path.name, about, names, self.project)
        return self._open(
            dialog,
            lambda: self.import_verified(reader, project=dialog.target(), remember=dialog.remember.isChecked()),
        )

    def import_verified(self, reader: Any, *, project: str | None = None, remember: bool = False) -> Job:
        """Import a verified bundle the user has seen (signer included) and accepted in the dialog."""
        ctx = self.ctx

        def run_import(progress) -> exchange.ImportResult:
            result = exchange.import_state(
                reader, project=project, confirm=lambda _bundle: True, ctx=ctx, progress=progress
            )
            if remember and result.signer is not None and not result.signer.known:
                exchange.remember_signer(ctx or Workspace.default(), result.signer)
            return result

        job = Job(run_import, title=f"Importing {reader.path.name}", pass_cancel=False)
        job.signals.finished.connect(when_alive(self, self._imported))
        job.signals.done.connect(when_alive(self, self.refresh))
        return self.runner.start(job)

    def _imported(self, result: exchange.ImportResult) -> None:
        self.last_import = result
        self.select_project(result.project, state=result.state_id)
        if result.warnings:
            self.notify(f"Imported into {result.project}", "The state was imported, with something to know.",
                        "\n".join(result.warnings))

    def notify(self, title: str, text: str, details: str = "") -> QMessageBox:
        """A non-blocking message about a finished job (the export's size, where a mail went)."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self.window)
        if details:
            box.setInformativeText(details)
        self.last_notice = box
        box.open()
        return box
