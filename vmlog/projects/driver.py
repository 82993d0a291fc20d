"""The contract every snapshot model implements: creating disks, saving, restoring, removing and exchanging states.

:class:`~vmlog.projects.overlay_chain.OverlayChain` implements it for backends whose disk chain
vmlog owns (libvirt); :class:`~vmlog.projects.native_tree.NativeTree` for backends with a native
snapshot tree (VirtualBox, VMware) that vmlog's tree mirrors. Everything specific to one model
lives behind these methods, so the use cases above read the same for both.
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hypervisors.base import Hypervisor, VMState
from hypervisors.errors import VMNotFound
from hypervisors.spec import DiskSpec
from vmlog.errors import AlreadyExists, InvalidInput
from vmlog.projects.model import ChainRoot, Project, State
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import ImageStore, StoredImage

if TYPE_CHECKING:  # only an import reads bundles: every other command starts without their modules
    from vmlog.bundles import BundleReader, VerifiedBundle

Progress = Callable[[str, float | None], None]
LayersOf = Callable[[State], dict[str, Path]]  # a state -> label -> a qcow2 chain top showing its disk


def no_progress(message: str, fraction: float | None = None) -> None:
    """The progress callback used when nobody watches."""


def defined_vm_state(backend: Hypervisor | None, vm_name: str) -> VMState | None:
    """The VM's state, or None when there is no backend or it does not (or no longer) define the VM."""
    if backend is None:
        return None
    try:
        return backend.state(vm_name) if backend.exists(vm_name) else None
    except VMNotFound:
        return None


@dataclass
class NewDisks:
    """What a new project's disks are: the chain roots, the live layers vmlog owns, the VM's disk list."""

    roots: dict[str, ChainRoot] = field(default_factory=dict)
    live: dict[str, str] = field(default_factory=dict)
    disks: list[DiskSpec] = field(default_factory=list)


@dataclass(frozen=True)
class IncomingState:
    """A verified bundle on its way into a project: what to read, on which base, and how to record it."""

    reader: BundleReader
    bundle: VerifiedBundle
    image: StoredImage
    describe: str  # who signed it, for the message of a state that came without one
    memory: bool = False  # import the memory image too (its stack fits this host)


class StateDriver(ABC):
    """One snapshot model. ``backend`` may be None where the model can work on files alone."""

    backend: Hypervisor | None

    def vm_state(self, project: Project) -> VMState | None:
        """The project's VM state; None when no VM is defined (or no backend is open)."""
        return defined_vm_state(self.backend, project.vm_name)

    def check_save(self, project: Project, states: dict[str, State], name: str | None, memory: bool) -> VMState | None:
        """Refuse a save that cannot work (a taken name, a VM in a state that cannot be saved); the VM state.

        Which capabilities a running VM's save needs differs by model; the driver checks those.
        """
        if name and any(s.name == name for s in states.values()):
            raise AlreadyExists(
                f"project {project.name!r} already has a state called {name!r}",
                fix="choose another name, or rename the old state with `vml state rename`",
            )
        vm_state = self.vm_state(project)
        if vm_state not in (None, VMState.STOPPED, VMState.RUNNING, VMState.PAUSED, VMState.CRASHED):
            raise InvalidInput(
                f"cannot save a state of {project.name!r} while its VM is {vm_state.value}",
                fix="`vml up` to resume it (or `vml down --poweroff`), then save",
            )
        running = vm_state in (VMState.RUNNING, VMState.PAUSED)
        if memory and not running:
            raise InvalidInput(
                "a state with memory needs a running VM", fix="`vml up` first, or save without --memory"
            )
        return vm_state

    @abstractmethod
    def create_disks(
        self,
        staged: ProjectFiles,
        published: ProjectFiles,
        base: StoredImage,
        images: ImageStore,
        *,
        scratch_size: str | int | None,
        progress: Progress = no_progress,
    ) -> NewDisks:
        """Make a new project's disks in ``staged``; the disk paths returned are where they are once published."""

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

    @abstractmethod
    def exchanged_labels(self, project: Project) -> list[str]:
        """The disks a bundle of this project carries (those on the shared base)."""

    @abstractmethod
    def reading_states(
        self, files: ProjectFiles, project: Project, image: StoredImage, work: Path
    ) -> AbstractContextManager[LayersOf]:
        """A way to read states' disks as qcow2 chain tops on the base, valid while the block runs.

        ``work`` is a private directory the caller deletes afterwards.
        """

    @abstractmethod
    def add_state(
        self, files: ProjectFiles, incoming: IncomingState, *, work: Path, progress: Progress = no_progress
    ) -> State:
        """Record a verified bundle's state in the project, keeping the sender's id (the caller holds the lock).

        The caller has checked that the id is new and the disks match; ``work`` is a private
        directory the caller deletes afterwards.
        """


def chain_tops(files: ProjectFiles) -> LayersOf:
    """Reading states whose disks are vmlog's own qcow2 layers."""

    def layers_of(state: State) -> dict[str, Path]:
        return {label: files.layers.path(layer) for label, layer in state.layers.items()}

    return layers_of



@contextmanager
def private_work_dir(parent: Path, prefix: str = "vmlstate-") -> Iterator[Path]:
    """A fresh directory under ``parent`` (on the same file system as the store) deleted when the block ends."""
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
