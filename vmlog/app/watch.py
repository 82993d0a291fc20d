"""Which project's VM changed state: backend state events turned into project names for one vmlog home.

A :class:`ProjectWatch` subscribes once per backend connection the home's projects use (projects
on the same backend and options share one subscription) and reports ``(project, VMState)``. VMs of
other homes or of other programs are ignored. Backends without ``Capability.STATE_EVENTS`` are
listed in :attr:`ProjectWatch.unwatched`, so a caller knows it still has to poll those projects.

Callbacks arrive on the backend's event thread, never the caller's.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypervisors import registry
from hypervisors.base import Capability, VMState
from hypervisors.errors import HypervisorError
from vmlog.app import logbook, projects
from vmlog.app.states import sizes_of
from vmlog.errors import NotFound
from vmlog.projects.backends import unsaved_changes
from vmlog.projects.current import get as current_of
from vmlog.projects.model import State
from vmlog.projects.names import vm_name_for
from vmlog.workspace import Workspace

log = logging.getLogger(__name__)

ProjectCallback = Callable[[str, VMState], None]
BackendKey = tuple[str, str]  # (backend name, its options as canonical JSON)


def backend_key(backend: str, options: dict[str, Any]) -> BackendKey:
    return registry.canonical_name(backend), json.dumps(options, sort_keys=True, default=str)


class ProjectWatch:
    """Reports VM state changes of this home's projects to ``callback(project, state)``."""

    def __init__(
        self, callback: ProjectCallback, ctx: Workspace | None = None, *, default_backend: str | None = "kvm"
    ) -> None:
        """``default_backend`` is watched even before any project uses it, so the first VM is heard too."""
        self._callback = callback
        self._default = backend_key(default_backend, {}) if default_backend else None
        self.ctx = ctx or Workspace.default()
        self._prefix = vm_name_for(self.ctx.home, "x")[:-1]  # "vmlog-<home id>-"
        self._lock = threading.Lock()
        self._projects: dict[str, str] = {}  # VM name -> project name
        self._needed: set[BackendKey] = set()
        self._unsubscribe: dict[BackendKey, Callable[[], None]] = {}
        self._stopped = False
        self.unwatched: dict[BackendKey, str] = {}  # backends that give no events, and why

    def sync(self) -> bool:
        """Subscribe to every backend the projects use now; True if all of them push events.

        Opens connections, so it may block (a remote libvirt): call it off the UI thread. Call it
        again after projects were created or moved to another backend.
        """
        needed = self._read_projects()
        with self._lock:
            if self._stopped:
                return False
            missing = [key for key in needed if key not in self._unsubscribe]
        for key in missing:
            self._subscribe(key)
        with self._lock:
            return not any(key in self.unwatched for key in needed)

    def stop(self) -> None:
        """Unsubscribe everywhere; no callback runs once this returns."""
        with self._lock:
            self._stopped = True
            subscriptions = list(self._unsubscribe.values())
            self._unsubscribe.clear()
        for unsubscribe in subscriptions:
            try:
                unsubscribe()
            except HypervisorError as exc:
                log.debug("unsubscribing failed: %s", exc)

    @property
    def watching(self) -> list[BackendKey]:
        with self._lock:
            return list(self._unsubscribe)

    # -- internals ---------------------------------------------------------------------------
    def _read_projects(self) -> set[BackendKey]:
        projects: dict[str, str] = {}
        needed: set[BackendKey] = {self._default} if self._default else set()
        for name in self.ctx.projects.names():
            try:
                project = self.ctx.projects.files(name).load()
            except (OSError, ValueError, KeyError, NotFound) as exc:  # a broken record is doctor's business
                log.debug("project %s unreadable: %s", name, exc)
                continue
            projects[project.vm_name] = project.name
            needed.add(backend_key(project.backend, project.backend_options))
        with self._lock:
            self._projects = projects
            self._needed = needed
        return needed

    def _subscribe(self, key: BackendKey) -> None:
        name, options_json = key
        try:
            backend = registry.open_backend(name, **json.loads(options_json))
        except HypervisorError as exc:
            self._mark_unwatched(key, exc.message)
            return
        try:
            if not backend.can(Capability.STATE_EVENTS):
                self._mark_unwatched(key, f"{backend.name} does not report VM state changes")
                return
            unsubscribe = backend.watch_states(self._on_state)
        except HypervisorError as exc:
            self._mark_unwatched(key, exc.message)
            return
        finally:
            backend.close()  # the watch holds a connection of its own
        with self._lock:
            if self._stopped:
                keep = False
            else:
                keep = True
                self._unsubscribe[key] = unsubscribe
                self.unwatched.pop(key, None)
        if not keep:
            unsubscribe()

    def _mark_unwatched(self, key: BackendKey, why: str) -> None:
        with self._lock:
            self.unwatched[key] = why

    def _project_of(self, vm_name: str) -> str | None:
        with self._lock:
            project = self._projects.get(vm_name)
        if project is None and vm_name.startswith(self._prefix):
            self._read_projects()  # a project made (or renamed) since the last read
            with self._lock:
                # not published yet: its VM is named after it (vm_name_for)
                project = self._projects.get(vm_name) or vm_name[len(self._prefix):]
        return project

    def _on_state(self, vm_name: str, state: VMState) -> None:
        project = self._project_of(vm_name)
        if project is None:
            return
        with self._lock:
            if self._stopped:
                return
        self._callback(project, state)


def project_row(name: str, ctx: Workspace | None = None) -> projects.ProjectSummary:
    """One project's row of :func:`projects.list_projects`, asking only that project's VM for its state."""
    ctx = ctx or Workspace.default()
    if name not in ctx.projects.names():
        raise NotFound(f"no project named {name!r}", fix="list the projects with `vml project list`")
    return projects.summarize(ctx.projects.files(name), current_of(ctx.home.data))


@dataclass(frozen=True)
class ProjectPage:
    """Everything the window shows of one project, read with each state record read once."""

    details: projects.ProjectDetails
    states: dict[str, State]
    layer_sizes: dict[str, int | None]  # state id -> bytes of its own layers (None: the hypervisor holds them)
    history: list[logbook.HistoryItem]


def project_page(name: str, ctx: Workspace | None = None) -> ProjectPage:
    """One project for its page: details, states, layer sizes and history (what ``vml project show``,
    ``vml state list`` and ``vml log`` say), reading the project's state records once rather than three times."""
    ctx = ctx or Workspace.default()
    files, project = projects.load(name, ctx)
    states = files.states()
    sizes = sizes_of(files, states)  # from the volumes for a project on a remote host
    details = projects.ProjectDetails(project=project, vm=projects.vm_status(project), states=len(states),
                                      path=files.root, unsaved_changes=bool(unsaved_changes(files, project)))
    return ProjectPage(details, states, sizes, logbook.history(name, ctx=ctx))
