"""Saving, restoring and removing states as the hypervisor's own snapshots (VirtualBox, VMware).

The hypervisor owns the differencing disks; vmlog's tree mirrors its snapshot tree. Each state
record names its native snapshot (``State.native_id``, immutable like the state id); the VM itself
is the project's live layer and must outlive every state, so it is defined once and kept.

Write order, with a small journal (:mod:`vmlog.projects.native_journal`) naming the operation in flight:

* save: journal -> native snapshot -> ``state.json`` (with the native id) -> ``project.json``
  (current = the state) -> journal removed.
* restore: journal -> native restore -> ``project.json`` -> journal removed.
* remove: journal -> native delete -> children re-parented -> ``state.json`` deleted -> journal
  removed.
* import: the bundle's content written into the stopped VM's current disk -> journal -> native
  snapshot -> ``state.json`` under the sender's id -> ``project.json`` -> journal removed.

:func:`vmlog.projects.native_reconcile.reconcile` (called by ``vml doctor``) finishes or forgets a
journalled operation.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from hypervisors import qemu_img, registry
from hypervisors.base import Capability, Hypervisor, NativeSnapshot, SnapshotModel, VMState
from hypervisors.errors import InvalidState
from hypervisors.spec import DiskSpec
from vmlog import fsutil
from vmlog.errors import InvalidInput, NotFound, VmlogError
from vmlog.projects import native_exchange, refs
from vmlog.projects.driver import IncomingState, LayersOf, NewDisks, Progress, StateDriver, no_progress
from vmlog.projects.incoming import record_fields
from vmlog.projects.model import SCRATCH_DISK, SYSTEM_DISK, ChainRoot, Project, State, new_id
from vmlog.projects.native_journal import JOURNAL_FILE, journal_path, read_journal
from vmlog.projects.native_journal import begin as _begin
from vmlog.projects.native_journal import end as _end
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import ImageStore, StoredImage

__all__ = ["JOURNAL_FILE", "NativeTree", "create_blank", "forget", "is_native_project", "journal_path",
           "native_name", "read_journal"]

# qemu-img reads these tops; anything else (a VirtualBox differencing VDI) counts as changed
READABLE_TOPS = {".qcow2": "qcow2", ".vmdk": "vmdk"}


def is_native_project(project: Project) -> bool:
    """True if the project's backend keeps states in its own snapshot tree."""
    try:
        return registry.backend_class(project.backend).snapshot_model is SnapshotModel.NATIVE_TREE
    except Exception:  # an unknown or broken backend module: judge from the records
        return not project.live


def native_name(name: str | None, state_id: str) -> str:
    """The snapshot's name in the hypervisor (VMware addresses snapshots by ``a/b/c`` paths: no '/')."""
    return (name or f"vmlog {state_id[:8]}").replace("/", "-")


def create_blank(files: ProjectFiles, fmt: str, size: int | str) -> str:
    """A blank disk in the hypervisor's own format (a scratch disk's root), durable; returns its file name.

    Not ``import_disk``: VirtualBox would give every blank disk of one size the same UUID.
    """
    name = f"scratch-root.{fmt}"
    files.layers.dir.mkdir(parents=True, exist_ok=True)
    tmp = fsutil.temp_path_for(files.layers.path(name))
    try:
        qemu_img.create(tmp, fmt, size)
        fsutil.fsync_file(tmp)
        fsutil.durable_rename(tmp, files.layers.path(name))
    finally:
        tmp.unlink(missing_ok=True)
    return name


def _top_has_data(path: Path) -> bool:
    """True if the differencing disk holds data of its own (or cannot be read: assume it does)."""
    fmt = READABLE_TOPS.get(path.suffix.lower())
    if fmt is None:
        return True
    return qemu_img.top_has_data(path, fmt)


class NativeTree(StateDriver):
    """States as native snapshots of the project's VM in ``backend``."""

    def __init__(self, backend: Hypervisor) -> None:
        self.backend = backend

    # -- the VM ---------------------------------------------------------------------------
    def ensure_vm(self, files: ProjectFiles, project: Project | None = None) -> None:
        """Define the project's VM if it is not yet: it holds the live disk and every snapshot."""
        project = project or files.load()
        if self.backend.exists(project.vm_name):
            return
        if project.current is not None:
            raise VmlogError(
                f"the {self.backend.name} VM {project.vm_name!r} holding the states of {project.name!r} is gone",
                fix="`vml doctor` reports which states were lost; remove them with `vml state rm`",
            )
        spec = files.vm_spec(project)
        for path in (spec.serial_log, spec.channel_socket):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        self.backend.define(spec)

    def snapshots(self, project: Project) -> dict[str, NativeSnapshot]:
        """The VM's native snapshots by id (none if the VM does not exist)."""
        if not self.backend.exists(project.vm_name):
            return {}
        return {s.id: s for s in self.backend.snapshot_list(project.vm_name)}

    def live_has_changes(self, files: ProjectFiles) -> bool:
        project = files.load()
        if not self.backend.exists(project.vm_name):
            return False
        # A backend whose tops qemu-img cannot name by suffix (VirtualBox: {uuid}.vdi) reads them itself.
        has_data = getattr(self.backend, "top_has_data", _top_has_data)
        return any(has_data(Path(top)) for top in self.backend.disk_tops(project.vm_name).values())

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
        """The hypervisor writes its own differencing disks on one base file shared by every project."""
        fmt = self.backend.native_disk_format
        progress(f"converting the base to {fmt} (once, shared by every project)", 0.3)
        shared = images.converted(base.sha256, fmt)
        new = NewDisks(
            roots={SYSTEM_DISK: ChainRoot(format=base.qemu_format, image_sha256=base.sha256)},
            disks=[DiskSpec(path=shared, format=fmt, label=SYSTEM_DISK)],  # type: ignore[arg-type]
        )
        if scratch_size:
            root = create_blank(staged, fmt, scratch_size)
            new.roots[SCRATCH_DISK] = ChainRoot(format=fmt, file=root)
            new.disks.append(DiskSpec(path=published.layers.path(root), format=fmt, label=SCRATCH_DISK))  # type: ignore[arg-type]
        return new

    # -- operations -----------------------------------------------------------------------
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
        project = files.load()
        states = files.states()
        running = self.check_save(project, states, name, memory) in (VMState.RUNNING, VMState.PAUSED)
        if running:  # the hypervisor keeps a running VM's memory with its snapshot either way
            self.backend.require(Capability.LIVE_SNAPSHOT, "save a state while the VM runs")
        self.ensure_vm(files, project)
        state_id = new_id()
        created = time.time()
        _begin(files, op="save", state=state_id, parent=project.current, name=name or None,
               message=message, author=author, created=created)
        progress(f"taking a {self.backend.name} snapshot", 0.2)
        try:
            native_id = self.backend.snapshot_create(
                project.vm_name, native_name(name, state_id), with_memory=running
            )
        except BaseException:
            _end(files)
            raise
        node = self.snapshots(project).get(native_id)
        by_native = {s.native_id: s.id for s in states.values() if s.native_id}
        parent = project.current
        if node is not None and node.parent_id in by_native:
            parent = by_native[node.parent_id]  # the hypervisor's tree is the truth
        state = State(
            id=state_id,
            parent=parent,
            name=name or None,
            message=message,
            author=author,
            created=created,
            layers={},
            spec=dict(project.spec),
            backend=project.backend if (node is not None and node.has_memory) or running else None,
            native_id=native_id,
        )
        files.write_state(state)
        project.current = state_id
        files.write(project)  # commit point
        _end(files)
        if memory and not resume:
            progress("powering the VM off (its memory is in the snapshot)", 0.8)
            self.backend.poweroff(project.vm_name)
        progress("saved", 1.0)
        return state

    def restore(self, files: ProjectFiles, target: State, *, progress: Progress = no_progress) -> None:
        project = files.load()
        vm_state = self.vm_state(project)
        if vm_state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            raise InvalidInput(
                f"the VM of {project.name!r} is {vm_state.value}",
                fix="`vml down` first (or restore with --stop)",
            )
        if target.native_id is None:
            raise InvalidInput(
                f"state {target.label()} has no {self.backend.name} snapshot",
                fix="it was made on another backend; import it as a bundle instead",
            )
        self.ensure_vm(files, project)
        if target.native_id not in self.snapshots(project):
            raise NotFound(
                f"the {self.backend.name} snapshot {target.native_id} of state {target.label()} is gone",
                fix=f"`vml doctor` to check the project; `vml state rm {target.id[:8]}` to forget the state",
            )
        _begin(files, op="restore", state=target.id)
        if vm_state == VMState.SAVED:
            self.backend.discard_saved_state(project.vm_name)
        progress(f"restoring the {self.backend.name} snapshot", 0.4)
        self.backend.snapshot_restore(project.vm_name, target.native_id)
        project.current = target.id
        files.write(project)  # commit point
        _end(files)
        progress("restored", 1.0)

    def remove(self, files: ProjectFiles, state: State, *, progress: Progress = no_progress) -> None:
        project = files.load()
        states = files.states()
        kids = refs.children(states, state.id)
        if state.native_id is not None and state.native_id in self.snapshots(project):
            _begin(files, op="remove", state=state.id)
            progress(f"deleting the {self.backend.name} snapshot", 0.3)
            try:
                self.backend.snapshot_delete(project.vm_name, state.native_id)
            except InvalidState as exc:
                _end(files)
                live_child = project.current == state.id
                count = len(kids) + (1 if live_child else 0)
                what = ", ".join(k.label() for k in kids) + (" and the live disk" if live_child else "")
                raise InvalidInput(
                    f"{self.backend.name} cannot remove state {state.label()}: it has {count} children"
                    f" ({what}) and its disk cannot be merged into more than one ({exc.message})",
                    fix="remove or restore away from all but one of its children first",
                ) from exc
            except BaseException:
                _end(files)
                raise
        else:
            _begin(files, op="remove", state=state.id)
        forget(files, project, states, state)
        _end(files)
        progress("removed", 1.0)

    # -- exchange -------------------------------------------------------------------------
    def exchanged_labels(self, project: Project) -> list[str]:
        return native_exchange.base_labels(project)

    def reading_states(
        self, files: ProjectFiles, project: Project, image: StoredImage, work: Path
    ) -> AbstractContextManager[LayersOf]:
        base = native_exchange.native_base_of(files, project)
        return nullcontext(native_exchange.StateReader(project, image, base, self.backend, work).layers)

    def add_state(
        self, files: ProjectFiles, incoming: IncomingState, *, work: Path, progress: Progress = no_progress
    ) -> State:
        """The bundle's content written into the stopped VM's disk on its ``since`` state, then snapshotted.

        A full bundle goes into a project with no state yet; an incremental one onto its ``since``
        state, restored first (the live disk must hold no unsaved work). Afterwards the VM sits on
        the imported state.
        """
        project = files.load()
        states = files.states()
        self.ensure_vm(files, project)
        self._check_import_target(files, project, incoming)
        with self.reading_states(files, project, incoming.image, work) as layers_of:
            parent, layers = native_exchange.bundle_layers(files, project, states, incoming, layers_of, work, progress)
        vm = project.vm_name
        if parent is not None:
            progress(f"restoring the {self.backend.name} snapshot of {parent.label()}", 0.6)
            self.restore(files, parent)
        native_exchange.stop_cleanly(self.backend, vm)
        progress(f"writing the disks into the {self.backend.name} VM", 0.7)
        for label, layer in layers.items():
            native_exchange.load_disk(self.backend, vm, label, layer)
        return self._snapshot_import(files, project, states, incoming, parent, progress)

    def _check_import_target(self, files: ProjectFiles, project: Project, incoming: IncomingState) -> None:
        """Refuse to import into a VM that runs, holds unsaved work, or (for a full bundle) has states."""
        vm_state = self.backend.state(project.vm_name)
        if vm_state not in (VMState.STOPPED, VMState.CRASHED, VMState.SAVED) or (
            vm_state == VMState.SAVED and incoming.bundle.since is None
        ):
            raise InvalidInput(
                f"the VM of {project.name!r} is {vm_state.value}; states are imported into a stopped VM",
                fix="`vml down` the project first",
            )
        if self.live_has_changes(files):
            raise InvalidInput(
                f"the VM of {project.name!r} holds unsaved changes, which the import would replace",
                fix="save them with `vml state save` (or restore a state with --discard), then import again",
            )
        if incoming.bundle.since is None and project.current is not None:
            raise InvalidInput(
                f"project {project.name!r} already has states in its {self.backend.name} snapshot tree; a"
                " full bundle starts a new tree",
                fix="import into a new project (--project NEWNAME)",
            )

    def _snapshot_import(
        self, files: ProjectFiles, project: Project, states: dict[str, State], incoming: IncomingState,
        parent: State | None, progress: Progress,
    ) -> State:
        """Snapshot the VM's disk (which shows the bundle's state now) and record it under the sender's id."""
        sid = incoming.bundle.state["id"]
        fields = record_fields(incoming.bundle, states, incoming.describe)
        _begin(files, op="save", state=sid, parent=parent.id if parent else None, name=fields["name"],
               message=fields["message"], author=fields["author"], created=fields["created"] or time.time())
        progress(f"taking the {self.backend.name} snapshot", 0.9)
        try:
            native_id = self.backend.snapshot_create(project.vm_name, native_name(fields["name"], sid))
        except BaseException:
            _end(files)
            raise
        state = State(id=sid, parent=parent.id if parent else None, layers={}, spec=dict(project.spec),
                      native_id=native_id, **fields)
        files.write_state(state)
        project = files.load()
        project.current = sid
        files.write(project)  # commit point
        _end(files)
        return state


def forget(files: ProjectFiles, project: Project, states: dict[str, State], state: State) -> None:
    """Drop the record of a state whose native snapshot is gone; its children move to its parent."""
    for kid in refs.children(states, state.id):
        files.rewrite_state(dataclasses.replace(kid, parent=state.parent))
    if project.current == state.id:
        project.current = state.parent
        files.write(project)
    files.delete_state(state.id)
