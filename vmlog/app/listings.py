"""Read-only listings (projects, a project's states) that import only what reading needs.

``vml project list`` and ``vml state list`` are the commands typed most; the full use-case modules
import the save, restore and exchange machinery, which costs more than the listing itself. These
functions give the same results as :func:`vmlog.app.projects.list_projects` and
:func:`vmlog.app.states.states` and :func:`~vmlog.app.states.state_tree` (tests/vmlog/app/test_listings.py
compares them), so the command
line's quick path (:mod:`vmlog.cli.fast`) can answer without loading the rest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypervisors import registry
from hypervisors.base import SnapshotModel, VMState
from vmlog.app.results import MappingResult, VMStatus
from vmlog.errors import NotFound
from vmlog.projects import current as current_project
from vmlog.projects import graph
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles, ProjectStore

if TYPE_CHECKING:
    from vmlog.workspace import Workspace

__all__ = ["ProjectSummary", "list_projects", "project_states", "resolve_project", "state_tree", "vm_statuses"]


@dataclass(frozen=True)
class ProjectSummary(MappingResult):
    """One project as ``vml project list`` and the GUI's sidebar show it."""

    name: str
    current: bool
    backend: str
    base: dict[str, Any]  # name, version, sha256 of the base appliance
    states: int
    head: str | None  # the current state's id
    disk_bytes: int | None  # None for a project on a remote host: its layers are volumes there, not counted here
    vm: VMStatus | None  # None when the listing was asked not to ask the backends
    uri: str | None = None  # the libvirt host the project lives on; None: the backend's default

    @property
    def base_label(self) -> str:
        return " ".join(str(part) for part in (self.base.get("name"), self.base.get("version")) if part)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "current": self.current,
            "backend": self.backend,
            "base": self.base,
            "states": self.states,
            "head": self.head,
            "disk_bytes": self.disk_bytes,
            "vm": str(self.vm) if self.vm is not None else None,
            **({"uri": self.uri} if self.uri else {}),  # only a project that names its libvirt host
        }


def _stores(ctx: Workspace | None) -> tuple[Path, ProjectStore]:
    """The data directory and project store of ``ctx``, or of the default home (as ``Workspace.default()``).

    Without a workspace given, the image store and the logbook are neither needed nor imported.
    """
    if ctx is not None:
        return ctx.home.data, ctx.projects
    from vmlog.paths import home

    found = home().ensure()

    def resolve_image(sha: str) -> Path:
        from vmlog.store.images import ImageStore

        return ImageStore(found.images).get(sha).path

    return found.data, ProjectStore(found.projects, resolve_image)


def summary_of(files: ProjectFiles, project: Project, current: str | None, vm: VMStatus | None) -> ProjectSummary:
    """One project's summary from its record and the small usage cache (never every state or layer file)."""
    usage = files.usage(project)
    return ProjectSummary(
        name=project.name,
        current=project.name == current,
        backend=project.backend,
        base=project.base,
        states=usage.states,
        head=project.current,
        disk_bytes=None if project.remote else usage.disk_bytes,
        vm=vm,
        uri=project.uri,
    )


def list_projects(ctx: Workspace | None = None, *, with_vm_state: bool = True) -> list[ProjectSummary]:
    """Every project; the VMs' states come from one listing per backend, not one connection per project."""
    data, store = _stores(ctx)
    current = current_project.get(data)
    loaded = [(files, files.load()) for files in map(store.files, store.names())]
    statuses = vm_statuses([project for _files, project in loaded]) if with_vm_state else {}
    return [summary_of(files, project, current, statuses.get(project.name)) for files, project in loaded]


def vm_statuses(all_projects: list[Project]) -> dict[str, VMStatus]:
    """Project name -> its VM's state, asking each backend (with its options) once for all its projects."""
    groups: dict[str, list[Project]] = {}
    for project in all_projects:
        key = json.dumps([project.backend, project.backend_options], sort_keys=True, default=str)
        groups.setdefault(key, []).append(project)
    result: dict[str, VMStatus] = {}
    for group in groups.values():
        try:
            with registry.open_backend(group[0].backend, **group[0].backend_options) as backend:
                found = backend.vm_states([p.vm_name for p in group])
            for project in group:
                state = found.get(project.vm_name)
                result[project.name] = VMStatus(state if state is not None else VMState.STOPPED)
        except Exception as exc:  # any backend failure reads as "unknown", with its words
            for project in group:
                result[project.name] = VMStatus(None, str(getattr(exc, "message", exc)))
    return result


def resolve_project(name: str | None, ctx: Workspace | None = None) -> str:
    """``name``, or the current project if None (``NotFound`` with the fix if there is none)."""
    return _resolve(name, *_stores(ctx))


def _resolve(name: str | None, data: Path, store: ProjectStore) -> str:
    if name:
        return name
    current = current_project.get(data)
    if current is None or current not in store.names():
        raise NotFound("no project given and no current project", fix="name one, or `vml project new NAME`")
    return current


def project_states(
    project_name: str | None = None, *, ctx: Workspace | None = None
) -> tuple[Project, dict[str, State]]:
    """The project (``None``: the current one) and its states by id, read from the state index."""
    data, store = _stores(ctx)
    files = store.get(_resolve(project_name, data, store))
    return files.load(), files.states()


def state_tree(project_name: str | None = None, *, ctx: Workspace | None = None) -> list[str] | None:
    """The lines of ``vml state tree`` for a project whose states are vmlog's own layers.

    None for a project whose hypervisor keeps the states (whether the live disk has unsaved work is
    then asked through the backend's driver): :func:`vmlog.app.states.state_tree` draws that one.
    """
    data, store = _stores(ctx)
    files = store.get(_resolve(project_name, data, store))
    project = files.load()
    if _keeps_native_snapshots(project):
        return None
    all_states = files.states()
    dirty = any(files.layers.has_changes(name) for name in project.live.values())
    return draw_tree(all_states, project, dirty)


def draw_tree(all_states: dict[str, State], project: Project, dirty: bool) -> list[str]:
    """The lines of ``vml state tree``: one per state, like ``git log --graph``, HEAD marked."""

    def describe(state: State) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(state.created))
        parts = [state.id[:8], state.name or "", f"({when})"]
        if state.memory:
            parts.append("[memory]")
        if state.message and state.message != state.name:
            parts.append(f"- {state.message}")
        if state.id == project.current:
            parts.append("<- HEAD")
        return " ".join(p for p in parts if p)

    lines = graph.draw(all_states, project.current, describe, live_dirty=dirty)
    if project.current is None:
        lines.insert(0, "+ (live layer on the base image" + (", unsaved changes)" if dirty else ")"))
    return lines


def _keeps_native_snapshots(project: Project) -> bool:
    """As :func:`vmlog.projects.native_tree.is_native_project`, without importing the native driver."""
    try:
        return registry.backend_class(project.backend).snapshot_model is SnapshotModel.NATIVE_TREE
    except Exception:  # an unknown or broken backend module: judge from the records
        return not project.live
