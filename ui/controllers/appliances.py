"""The Appliances page's controller: lists catalog entries, runs ``vmlog.setup.setup`` and makes new projects.

"Set up" calls the same setup service as ``vml setup`` (backend, download, verify, contextualise,
boot, ready) with the job's cancel event; "New project…" calls ``vmlog.app.projects.new_project``
on an image already in the store, as ``vml project new`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from ui.dialogs import NewProjectDialog
from ui.formatting import human_bytes
from ui.pages.appliances import ApplianceCard
from ui.pages.setup_dialog import ContextSetupDialog as SetupDialog
from ui.workers import Job, when_alive
from vmlog.app import appliances, projects
from vmlog.setup import SetupResult, setup

if TYPE_CHECKING:
    from ui.main_window import MainWindow
    from vmlog.app.setup_project import Workspace


def read_page() -> tuple[list[ApplianceCard], list[str]]:
    """The cards and what the page says about the catalogs: those that could not be read, those shown
    from their kept copy (with its date) while their server is down."""
    listing = appliances.list_appliances()
    return read_cards(listing), list(listing.problems)


def read_cards(listing: appliances.ApplianceListing | None = None) -> list[ApplianceCard]:
    """Catalog entries as cards; built-ins first. Never touches the network for online-only versions."""
    cards = []
    for row in (listing or appliances.list_appliances()).appliances:
        appliance = row.appliance
        versions = sorted(appliance.versions, key=lambda v: v.version)
        newest = versions[-1] if versions else None
        size = None
        if newest is not None:
            size = next((src.size for src in newest.images.values() if src.size), None)
        cards.append(
            ApplianceCard(
                key=appliance.name,
                name=appliance.title or appliance.name,
                version=newest.version if newest else "latest",
                summary=appliance.description,
                size=size,
                catalog=appliance.catalog,
                stored=row.stored,
                built_locally=appliance.local_builder,
            )
        )
    return cards


def stored_images() -> list[tuple[str, str]]:
    """(label, sha256) of every image in the store, for the new-project dialog."""
    images = [row.image for row in appliances.list_images()]
    return [(f"{i.name} {i.version} ({i.format}, {human_bytes(i.size)})", i.sha256) for i in images]


def backend_choices() -> list[tuple[str, str]]:
    """(title, key) of every backend the registry knows; the service reports one that does not work here."""
    return appliances.backend_choices()


class AppliancesController(QObject):
    setup_finished = Signal(str)  # the project name
    project_created = Signal(str)
    setup_ended = Signal()  # whatever the outcome: a cancelled setup may have removed a project

    def __init__(self, window: MainWindow, *, ctx: Workspace | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.page = window.appliances_page
        self.runner = window.runner
        self.ctx = ctx
        self.jobs: dict[str, Job] = {}
        self.active_dialog: NewProjectDialog | SetupDialog | None = None
        self.page.setup_requested.connect(self.ask_set_up)
        self.page.new_project_requested.connect(self.ask_new_project)
        self.refresh()

    def refresh(self) -> None:
        job = Job(lambda progress=None: read_page(), title="Reading catalogs", pass_cancel=False)
        job.signals.finished.connect(when_alive(self, self._show_page))
        self.runner.start_quiet(job)

    def _show_page(self, page: tuple[list[ApplianceCard], list[str]]) -> None:
        cards, notes = page
        self.page.set_cards(cards)
        self.page.set_catalog_notes(notes)

    def ask_set_up(self, key: str) -> SetupDialog:
        """Ask the new project's name, CPUs and memory; an existing project's name is refused, never reused."""
        taken = set(self.window.projects_page.projects.names())
        dialog = SetupDialog(self.window, key, taken, ctx=self.ctx)
        self.active_dialog = dialog
        dialog.accepted.connect(lambda: self.set_up(key, **dialog.values()))
        dialog.finished.connect(lambda _code: setattr(self, "active_dialog", None))
        dialog.open()
        return dialog

    def set_up(self, key: str, **options: Any) -> Job:
        """Run the whole setup of appliance ``key``; ``options`` go to the service (name, backend, ...)."""
        job = Job(setup, key, title=f"Setting up {key}", ctx=self.ctx, **options)
        job.shown_in_page = True  # type: ignore[attr-defined]  # the step view replaces the jobs panel row
        self.jobs[key] = job
        self.page.show_setup(key, job)
        job.signals.finished.connect(lambda result: self._set_up(key, result))
        job.signals.done.connect(lambda: self.jobs.pop(key, None))
        job.signals.done.connect(self.refresh)
        job.signals.done.connect(self.setup_ended)
        return self.runner.start(job)

    def _set_up(self, key: str, result: SetupResult) -> None:
        self.setup_finished.emit(result.project)

    def ask_new_project(self) -> NewProjectDialog:
        dialog = NewProjectDialog(self.window, stored_images(), backend_choices())
        self.active_dialog = dialog
        dialog.accepted.connect(lambda: self.new_project(**dialog.values()))  # type: ignore[arg-type]
        dialog.finished.connect(lambda _code: setattr(self, "active_dialog", None))
        dialog.open()
        return dialog

    def new_project(self, name: str, image: str, *, backend: str, cpus: int, memory_mib: int) -> Job:
        job = Job(
            projects.new_project, name, image, backend=backend, cpus=cpus, memory_mib=memory_mib, ctx=self.ctx,
            title=f"Creating project {name}", pass_cancel=False,
        )
        job.signals.finished.connect(lambda project: self.project_created.emit(project.name))
        return self.runner.start(job)
