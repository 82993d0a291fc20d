"""The Projects page's controller: reads projects, states and the logbook, and runs the use cases.

Every action is one call of :mod:`vmlog.app` (the functions ``vml`` calls) in a job; when it ends,
the page is read again. Reading happens in jobs too, so a slow or remote libvirt never freezes the
window. The sidebar learns that a VM changed state (a guest that powered itself off, ``vml up`` in
a terminal) from the backends' state events where they have them (:mod:`ui.state_events`) and then
reads that one project again; a timer still reads everything, every ``refresh_ms`` while some
project's backend has no events, and not at all once all do. Reads run one
at a time, in order, so the last one shown is never older than the last event. The state actions
live in :mod:`ui.controllers.states`, export, import and mail in :mod:`ui.controllers.exchange`, registry
push and pull in :mod:`ui.controllers.registry_actions`, reproduction checks in :mod:`ui.controllers.check_actions`
and archiving in :mod:`ui.controllers.archive_actions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox

from ui.controllers.archive_actions import ArchiveActions
from ui.controllers.check_actions import CheckActions
from ui.controllers.display import DisplayActions
from ui.controllers.exchange import ExchangeActions
from ui.controllers.project_actions import ProjectActions
from ui.controllers.project_view import BUSY_STATES, ProjectView, read_project, read_projects, summary_of
from ui.controllers.registry_actions import RegistryActions
from ui.controllers.states import StateActions
from ui.project_list import ProjectSummary
from ui.state_events import StateEvents
from ui.statetree.checks import show_check_marks
from ui.statetree.model import CHECKS_COLUMN
from ui.workers import Job, when_alive
from vmlog.app import exchange, running, watch
from vmlog.app.types import VMState, Workspace

if TYPE_CHECKING:
    from ui.main_window import MainWindow

__all__ = ["BUSY_STATES", "ProjectView", "ProjectsController", "read_project", "read_projects"]


class ProjectsController(
    StateActions, ExchangeActions, RegistryActions, CheckActions, ArchiveActions, DisplayActions, ProjectActions,
    QObject,
):
    """Owns no state of its own beyond what the page shows; the use cases are the truth."""

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
        self.display_windows = {}
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
        window.closing.connect(self.timer.stop)
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
        if self.window.quitting:
            return
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
        job.signals.finished.connect(when_alive(self, self._show))
        job.signals.done.connect(when_alive(self, self._read_done))
        job.signals.errored.connect(
            when_alive(self, lambda failure: self.page.set_heading("Cannot read projects", failure.message))
        )
        self.runner.start_quiet(job)

    def refresh_project(self, name: str) -> None:
        """Read one project again (its VM changed state): its sidebar row, and the page if it is shown."""
        if self.window.quitting:
            return
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
        job.signals.finished.connect(when_alive(self, self._show_one))
        job.signals.errored.connect(when_alive(self, lambda _failure: self._again_later()))  # e.g. removed meanwhile
        job.signals.done.connect(when_alive(self, self._read_done))
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
        """Events reach every project: no periodic full read at all; else poll at the configured pace."""
        if self.refresh_ms <= 0 or self.window.quitting:
            return
        if covered:
            self.timer.stop()
        else:
            self.timer.start(self.refresh_ms)

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
        dirty = info.unsaved_changes
        count = len(view.nodes)
        vm = view.vm.label if view.vm.known else f"state unknown: {view.vm.reason}"
        facts = (
            vm,
            info.project.backend,
            " ".join(str(info.project.base[key]) for key in ("name", "version") if info.project.base.get(key)),
            f"{count} state{'s' if count != 1 else ''}",
            "unsaved changes" if dirty else "",
        )
        page.set_heading(view.name, " · ".join(p for p in facts if p))
        page.tree.set_states(view.nodes, view.current, dirty=dirty, rows=view.rows, lanes=view.lanes,
                             row_of=view.row_of, key=view.rows_key, sizes_known=view.sizes_known)
        show_check_marks(page.tree.state_model, view.check_marks, CHECKS_COLUMN)
        if wanted is not None and wanted[0] == view.name:
            self._select = None
            if wanted[1]:
                page.tree.select_state(wanted[1])
        if view.history_rows is not None:
            page.logbook.set_rows(view.history_rows, view.history_key)
        else:
            page.logbook.set_history(view.history, view.names or {n.id: (n.name or n.id[:8]) for n in view.nodes})
        self._update_buttons()

    def _update_buttons(self) -> None:
        view = self.view
        selected = self.page.tree.selected_state()
        has_project = view is not None
        busy = view is not None and view.busy
        on_state = bool(selected)
        self.page.set_enabled_actions(
            {
                "start": has_project and not busy,
                "shutdown": busy,
                "suspend": view is not None and view.vm.state == VMState.RUNNING,
                "switch": has_project and not busy,
                "console": has_project,
                "display": busy,
                "settings": has_project,
                "save": has_project,
                "restore": on_state,
                "branch": on_state,
                "rename": on_state,
                "delete": on_state,
                "export": on_state,
                "mail": on_state,
                "import": has_project,
                "push": on_state,
                "pull": True,
                "check-state": on_state,
                "check-project": has_project,
                "archive-project": has_project,
                "unarchive": True,
                "rename-project": has_project and view is not None and view.vm.state in (VMState.STOPPED, None),
                "delete-project": has_project and not busy,
            }
        )

    # -- running use cases -----------------------------------------------------------
    def run(
        self, title: str, fn: Callable[..., Any], *args: Any, on_result=None, with_progress: bool = True, **kwargs: Any
    ) -> Job:
        """Start ``fn`` (a use case) in a job; read the page again whatever the outcome."""
        kwargs.setdefault("ctx", self.ctx)
        job = Job(fn, *args, title=title, pass_cancel=False, pass_progress=with_progress, **kwargs)
        if on_result is not None:
            job.signals.finished.connect(when_alive(self, on_result))
        job.signals.done.connect(when_alive(self, self.refresh))
        return self.runner.start(job)

    def on_action(self, key: str) -> None:
        anywhere: dict[str, Callable[[], Any]] = {"pull": self.ask_pull, "unarchive": self.ask_unarchive}
        if key in anywhere:  # these make a project: no project needs to be selected
            anywhere[key]()
            return
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
            "display": self.show_display,
            "settings": self.ask_settings,
            "save": self.ask_save,
            "restore": lambda: state and self.ask_restore(state),
            "branch": lambda: state and self.ask_branch(state),
            "rename": lambda: state and self.ask_rename(state),
            "delete": lambda: state and self.delete_state(state),
            "export": lambda: state and self.ask_export(state),
            "mail": lambda: state and self.ask_mail(state),
            "import": self.ask_import,
            "push": lambda: state and self.ask_push(state),
            "check-state": lambda: state and self.run_checks(state),
            "check-project": lambda: self.run_checks(None),
            "archive-project": self.ask_archive_project,
            "rename-project": self.ask_rename_project,
            "delete-project": self.ask_delete_project,
        }
        handlers[key]()

    def _open(self, dialog, on_accept: Callable[[], Any]):
        self.active_dialog = dialog
        dialog.accepted.connect(on_accept)
        dialog.finished.connect(lambda _code: setattr(self, "active_dialog", None))
        dialog.open()
        return dialog

    def _label(self, state_id: str) -> str:
        if self.view:
            for node in self.view.nodes:
                if node.id == state_id:
                    return node.name or node.id[:8]
        return state_id[:8]
