"""The Projects page's controller: reads projects, states and the logbook, runs the project service.

Every action is one call of :mod:`vmlog.projects.service` (the functions ``vml`` calls) in a job;
when it ends, the page is read again from the service. Reading happens in jobs too, so a slow or
remote libvirt never freezes the window. The sidebar learns that a VM changed state (a guest that
powered itself off, ``vml up`` in a terminal) from the backends' state events where they have them
(:mod:`ui.state_events`) and then reads that one project again; a timer still reads everything, every
``refresh_ms`` while some project's backend has no events, every ``SAFETY_NET_MS`` as a safety net
once all do. Reads run one at a time, in order, so the last one shown is never older than the last
event. Export, import and mail call :mod:`vmlog.app.exchange`, as ``vml state export|import|send`` do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from ui.bundle_dialogs import ExportDialog, ImportDialog, MailDialog, file_dialog
from ui.dialogs import ConsoleDialog, RestoreDialog, SaveStateDialog, TextDialog
from ui.project_list import ProjectSummary
from ui.state_events import StateEvents
from ui.statetree.layout import StateNode
from ui.workers import Job
from vmlog.app import exchange, logbook, projects, running, watch
from vmlog.app import states as app_states
from vmlog.bundles import MAIL_ATTACHMENT_LIMIT
from vmlog.errors import VmlogError
from vmlog.mail import SmtpSettings
from vmlog.workspace import Workspace

if TYPE_CHECKING:
    from ui.main_window import MainWindow

BUSY_STATES = ("running", "paused", "transitioning")
SAFETY_NET_MS = 30_000  # full reads while state events cover every project


@dataclass
class ProjectView:
    """Everything the page shows of one project, read in one job."""

    name: str
    info: dict[str, Any]
    nodes: list[StateNode]
    current: str | None
    history: list[dict[str, Any]] = field(default_factory=list)


def base_label(base: dict[str, Any]) -> str:
    return " ".join(str(part) for part in (base.get("name"), base.get("version")) if part)


def summary_of(row: dict[str, Any]) -> ProjectSummary:
    """The sidebar's view of one row of ``projects.list_projects``."""
    return ProjectSummary(
        name=row["name"],
        vm_state=str(row.get("vm") or "unknown").split(" ")[0],
        backend=row["backend"],
        base=base_label(row.get("base") or {}),
        disk_bytes=row.get("disk_bytes"),
        states=row.get("states", 0),
    )


def read_projects(ctx: Workspace | None) -> list[ProjectSummary]:
    return [summary_of(row) for row in projects.list_projects(ctx)]


def read_project(name: str, ctx: Workspace | None) -> ProjectView:
    info = projects.show_project(name, ctx)
    project, states = app_states.states(name, ctx=ctx)
    sizes = app_states.layer_sizes(name, ctx=ctx)
    nodes = [
        StateNode(
            id=s.id,
            parent=s.parent,
            name=s.name,
            created=s.created,
            author=s.author,
            message=s.message,
            layer_bytes=sizes.get(s.id),
        )
        for s in states.values()
    ]
    return ProjectView(name, info, nodes, project.current, logbook.history(name, ctx=ctx))


class ProjectsController(QObject):
    """Owns no state of its own beyond what the page shows; the service is the truth."""

    refreshed = Signal()  # the sidebar and the selected project were read again
    project_refreshed = Signal(str)  # one project was read again after its VM changed state

    def __init__(
        self, window: MainWindow, *, ctx: Workspace | None = None, refresh_ms: int = 5000, events: bool = True
    ) -> None:
        super().__init__(window)
        self.window = window
        self.page = window.projects_page
        self.runner = window.runner
        self.ctx = ctx
        self.view: ProjectView | None = None
        self.active_dialog = None
        self.last_notice: QMessageBox | None = None
        self.last_export: exchange.ExportResult | None = None
        self.last_import: exchange.ImportResult | None = None
        self._select: tuple[str, str | None] | None = None  # (project, state) to show after the next read
        self._reading = False
        self._again = False
        self._pending: list[str] = []  # projects whose VM changed state, to read once the current read ends
        self._watched_names: list[str] | None = None
        self.page.projects.project_selected.connect(lambda _name: self.refresh())
        self.page.action.connect(self.on_action)
        self.page.logbook.note_requested.connect(self.add_note)
        self.page.tree.state_selected.connect(lambda _id: self._update_buttons())
        self.page.tree.state_activated.connect(lambda state_id: state_id and self.ask_restore(state_id))
        window.bundles_dropped.connect(lambda paths: [self.import_bundle(p) for p in paths])
        self.refresh_ms = refresh_ms
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)
        if refresh_ms > 0:
            self.timer.start()
        self.events: StateEvents | None = None
        if events:
            self.events = StateEvents(self.runner, ctx, self)
            self.events.changed.connect(lambda name, _state: self.refresh_project(name))
            self.events.coverage.connect(self._events_cover)
            window.installEventFilter(self.events)
        self.refresh()

    # -- reading -------------------------------------------------------------------------
    @property
    def project(self) -> str | None:
        return self.page.projects.selected_project()

    def refresh(self) -> None:
        """Read the sidebar and the selected project in a job (coalesced while one is running)."""
        if self._reading:
            self._again = True
            return
        self._reading = True
        selected = self._select[0] if self._select else self.project

        def read(progress=None) -> tuple[list[ProjectSummary], ProjectView | None]:
            summaries = read_projects(self.ctx)
            names = [s.name for s in summaries]
            name = selected if selected in names else (names[0] if names else None)
            return summaries, (read_project(name, self.ctx) if name else None)

        job = Job(read, title="Reading projects", pass_cancel=False)
        job.signals.finished.connect(self._show)
        job.signals.done.connect(self._read_done)
        job.signals.errored.connect(lambda failure: self.page.set_heading("Cannot read projects", failure.message))
        self.runner.start_quiet(job)

    def refresh_project(self, name: str) -> None:
        """Read one project again (its VM changed state): its sidebar row, and the page if it is shown."""
        if self._reading:
            if name not in self._pending:
                self._pending.append(name)
            return
        self._reading = True
        shown = self.project == name

        def read(progress=None) -> tuple[ProjectSummary, ProjectView | None]:
            summary = summary_of(watch.project_row(name, self.ctx))
            return summary, (read_project(name, self.ctx) if shown else None)

        job = Job(read, title=f"Reading {name}", pass_cancel=False)
        job.signals.finished.connect(self._show_one)
        job.signals.errored.connect(lambda _failure: self._again_later())  # e.g. removed meanwhile
        job.signals.done.connect(self._read_done)
        self.runner.start_quiet(job)

    def _again_later(self) -> None:
        self._again = True

    def _show_one(self, result: tuple[ProjectSummary, ProjectView | None]) -> None:
        summary, view = result
        if not self.page.projects.update_project(summary):
            self._again = True  # not listed yet: read the whole sidebar
            return
        if view is not None and view.name == self.project:
            self._show_view(view)
        self.project_refreshed.emit(summary.name)

    def _events_cover(self, covered: bool) -> None:
        """Events reach every project: poll only as a safety net; else poll at the configured pace."""
        if self.refresh_ms > 0:
            self.timer.setInterval(max(self.refresh_ms, SAFETY_NET_MS) if covered else self.refresh_ms)

    def select_project(self, name: str, *, state: str | None = None) -> None:
        """Show project ``name`` (and select ``state``) once the next read has it, e.g. after a setup."""
        self._select = (name, state)
        self.refresh()

    def _read_done(self) -> None:
        self._reading = False
        if self._again:
            self._again = False
            self._pending.clear()  # a full read covers them
            self.refresh()
        elif self._pending:
            self.refresh_project(self._pending.pop(0))
        else:
            self.refreshed.emit()

    def _show(self, result: tuple[list[ProjectSummary], ProjectView | None]) -> None:
        summaries, view = result
        page = self.page
        wanted = self._select
        page.projects.set_projects(summaries, select=wanted[0] if wanted else None)  # else keeps the user's pick
        names = [s.name for s in summaries]
        if self.events is not None and names != self._watched_names:
            self._watched_names = names
            self.events.sync()  # subscribe to the backends of projects that appeared
        if view is not None and view.name != self.project:
            self.refresh()  # the user picked another project meanwhile
            return
        self._show_view(view)

    def _show_view(self, view: ProjectView | None) -> None:
        page = self.page
        wanted = self._select
        self.view = view
        if view is None:
            page.set_heading("No projects yet", "Set up an appliance on the Appliances page to make one.")
            page.tree.set_states([], None)
            page.logbook.set_history([])
            self._update_buttons()
            return
        info = view.info
        base = base_label(info.get("base") or {})
        dirty = bool(info.get("unsaved_changes"))
        count = len(view.nodes)
        facts = (
            str(info.get("vm_state", "")),
            info.get("backend", ""),
            base,
            f"{count} state{'s' if count != 1 else ''}",
            "unsaved changes" if dirty else "",
        )
        page.set_heading(view.name, " · ".join(p for p in facts if p))
        page.tree.set_states(view.nodes, view.current, dirty=dirty)
        if wanted is not None and wanted[0] == view.name:
            self._select = None
            if wanted[1]:
                page.tree.select_state(wanted[1])
        names = {n.id: (n.name or n.id[:8]) for n in view.nodes}
        page.logbook.set_history(view.history, names)
        self._update_buttons()

    def _update_buttons(self) -> None:
        view = self.view
        selected = self.page.tree.selected_state()
        has_project = view is not None
        vm = str(view.info.get("vm_state", "")) if view else ""
        on_state = bool(selected)
        self.page.set_enabled_actions(
            {
                "start": has_project and vm not in BUSY_STATES,
                "shutdown": has_project and vm in BUSY_STATES,
                "suspend": has_project and vm == "running",
                "switch": has_project and vm not in BUSY_STATES,
                "console": has_project,
                "save": has_project,
                "restore": on_state,
                "branch": on_state,
                "rename": on_state,
                "delete": on_state,
                "export": on_state,
                "mail": on_state,
                "import": has_project,
            }
        )

    # -- running service calls -----------------------------------------------------------
    def run(
        self, title: str, fn: Callable[..., Any], *args: Any, on_result=None, with_progress: bool = True, **kwargs: Any
    ) -> Job:
        """Start ``fn`` (a service function) in a job; read the page again whatever the outcome."""
        kwargs.setdefault("ctx", self.ctx)
        job = Job(fn, *args, title=title, pass_cancel=False, pass_progress=with_progress, **kwargs)
        if on_result is not None:
            job.signals.finished.connect(on_result)
        job.signals.done.connect(self.refresh)
        return self.runner.start(job)

    def on_action(self, key: str) -> None:
        name = self.project
        if name is None:
            return
        state = self.page.tree.selected_state()
        handlers: dict[str, Callable[[], Any]] = {
            "start": lambda: self.run(f"Starting {name}", running.up, name),
            "shutdown": lambda: self.run(f"Shutting down {name}", running.down, name, mode="shutdown"),
            "suspend": lambda: self.run(f"Suspending {name}", running.down, name, mode="save"),
            "switch": lambda: self.run(f"Switching to {name}", running.switch, name),
            "console": self.show_console,
            "save": self.ask_save,
            "restore": lambda: state and self.ask_restore(state),
            "branch": lambda: state and self.ask_restore(state),
            "rename": lambda: state and self.ask_rename(state),
            "delete": lambda: state and self.delete_state(state),
            "export": lambda: state and self.ask_export(state),
            "mail": lambda: state and self.ask_mail(state),
            "import": self.ask_import,
        }
        handlers[key]()

    def _open(self, dialog, on_accept: Callable[[], Any]):
        self.active_dialog = dialog
        dialog.accepted.connect(on_accept)
        dialog.finished.connect(lambda _code: setattr(self, "active_dialog", None))
        dialog.open()
        return dialog

    def ask_save(self) -> SaveStateDialog:
        name = self.project
        dialog = SaveStateDialog(self.window, name or "")
        return self._open(dialog, lambda: self.save_state(*dialog.values()))

    def save_state(self, state_name: str | None, message: str) -> Job:
        name = self.project
        return self.run(
            f"Saving a state of {name}", app_states.save_state, name, state_name, message=message,
            on_result=lambda state: self.page.tree.select_state(state.id),
        )

    def ask_restore(self, state_id: str) -> RestoreDialog:
        view = self.view
        dirty = bool(view and view.info.get("unsaved_changes"))
        running = bool(view and str(view.info.get("vm_state")) in (*BUSY_STATES, "saved"))
        label = self._label(state_id)
        dialog = RestoreDialog(self.window, label, dirty=dirty, running=running)
        return self._open(
            dialog, lambda: self.restore_state(state_id, discard=dialog.choice == RestoreDialog.DISCARD)
        )

    def restore_state(self, state_id: str, *, discard: bool = False) -> Job:
        name = self.project
        return self.run(
            f"Restoring {self._label(state_id)}", app_states.restore_state, name, state_id, discard=discard,
            stop=not discard,
        )

    def ask_rename(self, state_id: str) -> TextDialog:
        dialog = TextDialog(self.window, "Rename state", "New name:", self._label(state_id))
        return self._open(dialog, lambda: self.rename_state(state_id, dialog.value()))

    def rename_state(self, state_id: str, new_name: str) -> Job:
        return self.run(f"Renaming {self._label(state_id)}", app_states.rename_state, self.project, state_id, new_name,
                        with_progress=False)

    def delete_state(self, state_id: str) -> Job:
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.Question, "Delete state", f"Delete the state “{self._label(state_id)}”?",
                          QMessageBox.StandardButton.Cancel, self.window)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        self.active_dialog = box
        box.buttonClicked.connect(
            lambda button: button is delete and self.run(
                f"Deleting {self._label(state_id)}", app_states.remove_state, self.project, state_id
            )
        )
        box.open()
        return box

    def add_note(self, text: str) -> Job:
        state = self.page.tree.selected_state() or None
        job = self.run(
            "Adding a note", logbook.add_note, text, project_name=self.project, ref=state, with_progress=False
        )
        job.signals.finished.connect(lambda _r: self.page.logbook.note_saved())
        return job

    def show_console(self) -> None:
        name = self.project

        def read(progress=None) -> str:
            return running.console_tail(name, lines=200, ctx=self.ctx)

        job = Job(read, title=f"Reading the console of {name}", pass_cancel=False)
        job.signals.finished.connect(lambda text: self._open(ConsoleDialog(self.window, name, text), lambda: None))
        self.runner.start(job)

    # -- bundles (the same exchange functions as `vml state export|import|send`) ------------------
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
        return self._open(dialog, lambda: self.export_state(state_id, **dialog.values()))

    def export_state(
        self, state_id: str, dest: Path, *, since: str | None = None, with_memory: bool = False, sign: bool = True
    ) -> Job:
        return self.run(
            f"Exporting {self._label(state_id)}", exchange.export_state, self.project, state_id, Path(dest),
            since=since, with_memory=with_memory, sign=sign, on_result=self._exported,
        )

    def _exported(self, result: exchange.ExportResult) -> None:
        self.last_export = result
        limit = MAIL_ATTACHMENT_LIMIT // 1_000_000
        verdict = (
            f"It fits a {limit} MB mail attachment."
            if result.fits_mail
            else f"It is too large for a {limit} MB mail attachment: share it another way, or export only"
            " the changes since a state the recipient has."
        )
        self.notify("State exported", f"Wrote {result.path.name} ({result.size / 1e6:.1f} MB). {verdict}",
                    str(result.path))

    def ask_mail(self, state_id: str) -> MailDialog:
        try:
            host: str | None = SmtpSettings.load((self.ctx or Workspace.default()).home.config).host
        except VmlogError:
            host = None
        dialog = MailDialog(self.window, self._label(state_id), host)
        return self._open(dialog, lambda: self.mail_state(state_id, *dialog.values()))

    def mail_state(self, state_id: str, to: str, client: bool = False) -> Job:
        return self.run(
            f"Mailing {self._label(state_id)} to {to}", exchange.send_state, self.project, state_id, to,
            client=client, on_result=self._mailed,
        )

    def _mailed(self, result: exchange.SendResult) -> None:
        how = "handed to your mail program" if result.via == "client" else "sent"
        self.notify("State shared", f"{result.export.path.name} ({result.export.size / 1e6:.1f} MB) {how}"
                    f" for {result.to}.", "\n".join(result.notes))

    def ask_import(self) -> QFileDialog:
        dialog = file_dialog(self.window, "Import state", Path.home(), save=False)
        self.active_dialog = dialog
        dialog.fileSelected.connect(lambda path: path and self.import_bundle(Path(path)))
        dialog.open()
        return dialog

    def import_bundle(self, path: Path) -> Job:
        """Verify the whole file (nothing written), then ask where it goes and whether to trust its signer."""

        def verify(progress=None) -> tuple[Any, dict[str, Any]]:
            reader = exchange.open_bundle(Path(path), ctx=self.ctx)
            return reader, exchange.describe_bundle(reader.verify(), ctx=self.ctx)

        job = Job(verify, title=f"Verifying {Path(path).name}", pass_cancel=False)
        job.signals.finished.connect(lambda found: self.ask_import_target(Path(path), *found))
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
        job.signals.finished.connect(self._imported)
        job.signals.done.connect(self.refresh)
        return self.runner.start(job)

    def _imported(self, result: exchange.ImportResult) -> None:
        self.last_import = result
        self.select_project(result.project, state=result.state_id)

    def notify(self, title: str, text: str, details: str = "") -> QMessageBox:
        """A non-blocking message about a finished job (the export's size, where a mail went)."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self.window)
        if details:
            box.setInformativeText(details)
        self.last_notice = box
        box.open()
        return box

    def _label(self, state_id: str) -> str:
        if self.view:
            for node in self.view.nodes:
                if node.id == state_id:
                    return node.name or node.id[:8]
        return state_id[:8]
