"""The Releases page's controller: sources, available and mounted releases, mounts and their logs.

Each button is one call of :mod:`vmlog.app.releases` in a job, the use cases ``vml release`` calls:
``add_release_source``/``remove_release_source``, ``available_releases``, ``mount_on_host``,
``umount_on_host``, ``host_mounts`` and the mount's log file (``mount_log``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from ui.formatting import human_bytes
from ui.pages.releases import CustomizeMountDialog, MountOptions, SourceForm
from ui.workers import Job
from vmlog.app import releases as app_releases
from vmlog.app.releases import DEFAULT_CACHE_LIMIT, MountHandle
from vmlog.errors import InvalidInput

if TYPE_CHECKING:
    from ui.main_window import MainWindow

LOG_LINES = 500  # the last lines of a mount's log the page shows


@dataclass(frozen=True)
class ReleaseKey:
    """Identifies an Available row: the source and the release's path in it (unique, unlike the name)."""

    source: str
    path: str
    name: str


@dataclass
class ReleasesView:
    available: list[tuple[ReleaseKey, list[str]]]
    problems: list[str]
    running: list[tuple[str, list[str]]]
    sources: list[tuple[str, list[str]]]


def read_running() -> list[tuple[str, list[str]]]:
    return [
        (h.name, [h.name, str(h.release.revision), h.release.tag, str(h.mountpoint)])
        for h in app_releases.host_mounts()
    ]


def read_releases() -> ReleasesView:
    """Everything the page shows; a source that cannot be reached becomes a note, not a failure."""
    found = app_releases.available_releases(keep_going=True)
    available: list[tuple[ReleaseKey, list[str]]] = []
    for item in found.releases:
        release = item.release
        key = ReleaseKey(item.source, release.path, release.name)
        available.append((key, [release.name, release.series, str(release.revision), release.tag, item.source]))
    rows = [(s.name, [s.name, s.kind, s.url, s.pattern]) for s in app_releases.list_release_sources()]
    return ReleasesView(available, found.problems, read_running(), rows)


def read_log(name: str) -> str:
    """The last lines of the log of mount ``name`` (its own log file if it was customised)."""
    path = app_releases.mount_log(name)
    try:
        lines = Path(path).read_text("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-LOG_LINES:])


def add_source(form: SourceForm) -> str:
    """Verify the source (list its releases once) and record it, as ``vml release source add`` does."""
    if not form.url:
        raise InvalidInput("the release source needs a URL", fix="type the source's URL in the URL field")
    key_pem = Path(form.key_file).expanduser().read_text("ascii") if form.key_file else None
    added = app_releases.add_release_source(
        form.url,
        kind=form.kind,
        key_pem=key_pem,
        name=form.name or None,
        pattern=form.pattern,
        proxy=form.proxy if form.proxy else None,
    )
    return added.name


def start_release(key: ReleaseKey, options: MountOptions | None = None) -> MountHandle:
    options = options or MountOptions(None, None, DEFAULT_CACHE_LIMIT, None)
    return app_releases.mount_on_host(
        key.path,
        source=key.source,
        at=options.at,
        cache_dir=options.cache_dir,
        cache_limit=options.cache_limit,
        log_file=options.log_file,
    )


class ReleasesController(QObject):
    refreshed = Signal()

    def __init__(self, window: MainWindow, *, refresh_ms: int = 5000) -> None:
        super().__init__(window)
        self.window = window
        self.page = window.releases_page
        self.runner = window.runner
        self.active_dialog: CustomizeMountDialog | None = None
        self.shown_log: str | None = None
        page = self.page
        page.refresh_requested.connect(self.refresh)
        page.start_requested.connect(self.on_start)
        page.unmount_requested.connect(self.unmount)
        page.mount_selected.connect(self.show_log)
        page.source_added.connect(self.add_source)
        page.source_removed.connect(self.remove_source)
        self._reading = False
        self.timer = QTimer(self)  # mounts come and go from the command line too; logs grow
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh_running)
        if refresh_ms > 0:
            self.timer.start()
        self.refresh()

    # -- reading --------------------------------------------------------------------------------
    def refresh(self) -> Job:
        """Read sources, what they publish and the mounts (the network is only touched here)."""
        job = Job(lambda progress=None: read_releases(), title="Reading release sources", pass_cancel=False)
        job.signals.finished.connect(self._show)
        job.signals.errored.connect(lambda failure: self.page.set_available([], failure.message))
        job.signals.done.connect(self.refreshed)
        return self.runner.start_quiet(job)

    def _show(self, view: ReleasesView) -> None:
        note = "; ".join(view.problems)
        if not view.sources:
            note = "No release source yet: add one on the Configure tab."
        self.page.set_available(view.available, note)
        self.page.set_running(view.running)
        self.page.set_sources(view.sources)

    def refresh_running(self) -> None:
        if self._reading:
            return
        self._reading = True
        shown = self.shown_log

        def read(progress=None) -> tuple[list[tuple[str, list[str]]], str | None]:
            return read_running(), (read_log(shown) if shown else None)

        job = Job(read, title="Reading mounts", pass_cancel=False)
        job.signals.finished.connect(self._show_running)
        job.signals.done.connect(lambda: setattr(self, "_reading", False))
        self.runner.start_quiet(job)

    def _show_running(self, found: tuple[list[tuple[str, list[str]]], str | None]) -> None:
        running, log = found
        self.page.set_running(running)
        if log is not None and self.shown_log:
            self.page.set_log(self.shown_log, log)

    def show_log(self, name: str) -> Job:
        self.shown_log = name
        job = Job(lambda progress=None: read_log(name), title=f"Reading the log of {name}", pass_cancel=False)
        job.signals.finished.connect(lambda text: self.page.set_log(name, text))
        return self.runner.start_quiet(job)

    # -- actions --------------------------------------------------------------------------------
    def _run(self, title: str, fn: Any, *args: Any, **kwargs: Any) -> Job:
        job = Job(fn, *args, title=title, pass_progress=False, pass_cancel=False, **kwargs)
        job.signals.done.connect(self.refresh)
        return self.runner.start(job)

    def on_start(self, key: ReleaseKey, customize: bool) -> None:
        if customize:
            self.ask_customize(key)
        else:
            self.start(key)

    def ask_customize(self, key: ReleaseKey) -> CustomizeMountDialog:
        found = app_releases.mount_defaults(key.name)
        defaults = MountOptions(found.mountpoint, found.cache_dir, found.cache_limit, found.log_file)
        dialog = CustomizeMountDialog(self.window, key.name, defaults)
        dialog.cache_size.setToolTip(f"default {human_bytes(DEFAULT_CACHE_LIMIT)}")
        self.active_dialog = dialog
        dialog.accepted.connect(lambda: self.start(key, dialog.options()))
        dialog.finished.connect(lambda _code: setattr(self, "active_dialog", None))
        dialog.open()
        return dialog

    def start(self, key: ReleaseKey, options: MountOptions | None = None) -> Job:
        job = self._run(f"Mounting {key.name}", start_release, key, options)
        job.signals.finished.connect(lambda handle: self._mounted(handle.name))
        return job

    def _mounted(self, name: str) -> None:
        self.page.tabs.setCurrentIndex(0)
        self.shown_log = name

    def unmount(self, name: str) -> Job:
        if self.shown_log == name:
            self.shown_log = None
        return self._run(f"Unmounting {name}", app_releases.umount_on_host, name)

    def add_source(self, form: SourceForm) -> Job:
        job = self._run(f"Adding release source {form.url}", add_source, form)
        job.signals.finished.connect(lambda _name: self.page.url.clear())
        return job

    def remove_source(self, name: str) -> Job:
        return self._run(f"Removing release source {name}", app_releases.remove_release_source, name)
