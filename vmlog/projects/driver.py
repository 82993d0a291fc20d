"""The backend-specific part of saving, restoring and removing states, behind one small interface.

:class:`~vmlog.projects.overlay_chain.OverlayChain` implements it for backends whose disk chain
vmlog owns (libvirt). Backends with a native snapshot tree (VirtualBox, VMware) get their own
implementation that mirrors vmlog's tree with ``snapshot_*`` calls; the service code above stays
the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from vmlog.projects.model import State
from vmlog.projects.store import ProjectFiles

Progress = Callable[[str, float | None], None]


def no_progress(message: str, fraction: float | None = None) -> None:
    """The progress callback used when nobody watches."""


class StateDriver(ABC):
    @abstractmethod
    def save(
        self,
        files: ProjectFiles,
        *,
        name: str | None,
        message: str,
        author: str,
        memory: bool,
        resume: bool = True,
        progress: Progress = no_progress,
    ) -> State:
        """Freeze the live disk state as a new state on top of the current one.

        With ``memory`` the VM's memory is saved too (the VM stops); ``resume`` starts it again
        from that image on the new live layer.
        """

    @abstractmethod
    def restore(self, files: ProjectFiles, target: State, *, progress: Progress = no_progress) -> None:
        """Make ``target`` the current state with a fresh live layer; the VM must be stopped.

        The caller has already saved (or chosen to discard) the live layer's unsaved work.
        """

    @abstractmethod
    def remove(self, files: ProjectFiles, state: State, *, progress: Progress = no_progress) -> None:
        """Forget ``state``, keeping every other state and the live layer byte-identical."""

    @abstractmethod
    def live_has_changes(self, files: ProjectFiles) -> bool:
        """True if the live layer holds work no state has saved."""
