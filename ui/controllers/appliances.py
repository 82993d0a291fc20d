"""The Appliances page's controller: lists catalog entries and runs a setup job with progress and cancel.

"Set up" calls the appliance setup service (download, verify, contextualise, boot) where it exists;
until it does, it pulls the image (download and verify), which is what ``vml appliance pull`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from ui.pages.appliances import ApplianceCard
from ui.workers import Job
from vmlog import paths
from vmlog.appliances.catalog import Catalogs, store_name
from vmlog.store.images import ImageStore

if TYPE_CHECKING:
    from ui.main_window import MainWindow


def read_cards() -> list[ApplianceCard]:
    """Catalog entries as cards; built-ins first. Never touches the network for online-only versions."""
    home = paths.home().ensure()
    stored = {image.name for image in ImageStore(home.images).list()}
    cards = []
    for appliance in Catalogs(home.config).appliances():
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
                stored=store_name(appliance.name) in stored,
                built_locally=appliance.local_builder,
            )
        )
    return cards


def set_up(name: str, *, progress=None, cancel=None) -> Any:
    """The setup service if this vmlog has it, else the pull service (download and verify only)."""
    try:
        from vmlog.appliances.setup import setup_appliance  # type: ignore[import-not-found]
    except ImportError:
        from vmlog.appliances.pull import pull

        home = paths.home().ensure()
        appliance = Catalogs(home.config).get(name)
        return pull(appliance, ImageStore(home.images), progress=progress, cancel=cancel)
    return setup_appliance(name, progress=progress, cancel=cancel)


class AppliancesController(QObject):
    setup_finished = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.page = window.appliances_page
        self.runner = window.runner
        self.jobs: dict[str, Job] = {}
        self.page.setup_requested.connect(self.set_up)
        self.refresh()

    def refresh(self) -> None:
        job = Job(lambda progress=None: read_cards(), title="Reading catalogs", pass_cancel=False)
        job.signals.finished.connect(self.page.set_cards)
        self.runner.start_quiet(job)

    def set_up(self, key: str) -> Job:
        job = Job(set_up, key, title=f"Setting up {key}")
        self.jobs[key] = job
        self.page.show_setup(key, job)
        job.signals.finished.connect(lambda _r: self.setup_finished.emit(key))
        job.signals.done.connect(lambda: self.jobs.pop(key, None))
        job.signals.done.connect(self.refresh)
        return self.runner.start(job)
