"""A project's hypervisor and the state driver for its snapshot model, opened the one way vmlog does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hypervisors import registry
from hypervisors.base import Hypervisor, SnapshotModel, VMState
from vmlog.projects.driver import StateDriver, defined_vm_state
from vmlog.projects.model import Project
from vmlog.projects.native_tree import NativeTree, is_native_project
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.store import ProjectFiles


def open_backend(project: Project) -> Hypervisor:
    return registry.open_backend(project.backend, **project.backend_options)


def driver_for(backend: Hypervisor | None) -> StateDriver:
    """The save/restore implementation for the backend's snapshot model."""
    if backend is None or backend.snapshot_model == SnapshotModel.OVERLAY_CHAIN:
        return OverlayChain(backend)
    return NativeTree(backend)


@contextmanager
def files_driver(project: Project) -> Iterator[StateDriver]:
    """The project's driver for work on its files: no backend for an overlay chain, its hypervisor for a native tree.

    Exchanging states of an overlay chain only reads and writes vmlog's own layers, so it works
    while the hypervisor is unreachable; a native tree lives in the hypervisor.
    """
    if not is_native_project(project):
        yield OverlayChain(None)
        return
    with open_backend(project) as backend:
        yield driver_for(backend)


def vm_state(backend: Hypervisor, vm_name: str) -> VMState:
    """The VM's state; a VM the hypervisor does not (or no longer) define reads as stopped."""
    return defined_vm_state(backend, vm_name) or VMState.STOPPED


def unsaved_changes(files: ProjectFiles, project: Project) -> bool | None:
    """Whether the live layer holds work no state has saved; ``None`` when the backend cannot say now.

    vmlog reads its own overlay chain directly; a native snapshot tree has to be asked through its
    backend, which may be unreachable (then the answer is unknown, not "no changes").
    """
    if not is_native_project(project):
        return OverlayChain(None).live_has_changes(files)
    try:
        with open_backend(project) as backend:
            return driver_for(backend).live_has_changes(files)
    except Exception:
        return None
