"""A project's hypervisor and the state driver for its snapshot model, opened the one way vmlog does."""

from __future__ import annotations

from hypervisors import registry
from hypervisors.base import Hypervisor, SnapshotModel, VMState
from hypervisors.errors import VMNotFound
from vmlog.projects.driver import StateDriver
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


def vm_state(backend: Hypervisor, vm_name: str) -> VMState:
    """The VM's state; a VM the hypervisor does not (or no longer) define reads as stopped."""
    try:
        return backend.state(vm_name) if backend.exists(vm_name) else VMState.STOPPED
    except VMNotFound:
        return VMState.STOPPED


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
