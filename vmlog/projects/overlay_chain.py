"""Saving and restoring states on a qcow2 overlay chain that vmlog owns (the libvirt backend).

Write order (data before metadata, ``project.json`` last) is what makes a crash at any instant
repairable:

* save: new empty overlay N on the live layer L -> ``state.json`` naming L -> the VM writes into N
  (``swap_disks``, all disks at once) -> ``project.json`` (current = the state, live = N). Before the last step the
  state is *uncommitted* (its layer is still the live one); repair rolls it forward if N exists
  and the VM is not still writing into L, else back.
* restore: new overlay on the target's layer -> ``project.json`` -> old live layer deleted.
* remove: each child's layer is rebased onto the removed state's parent (content unchanged, so
  safe mid-way) -> the child's ``state.json`` re-parented -> the state's ``state.json`` deleted ->
  its files deleted.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from hypervisors.base import Capability, Hypervisor, VMState
from hypervisors.errors import InvalidState, Unsupported
from hypervisors.spec import DiskSpec
from vmlog import fsutil
from vmlog.context.quiesce import QuiesceResult, quiesced
from vmlog.errors import InvalidInput
from vmlog.projects import checkpoints, refs
from vmlog.projects.driver import IncomingState, LayersOf, NewDisks, Progress, StateDriver, chain_tops, no_progress
from vmlog.projects.model import SCRATCH_DISK, SYSTEM_DISK, ChainRoot, Project, State, new_id
from vmlog.projects.overlay_exchange import MEMORY_FILE, add_overlay_state
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import ImageStore, StoredImage

__all__ = ["MEMORY_FILE", "OverlayChain"]


class OverlayChain(StateDriver):
    """``backend`` may be None: then only the files change and the VM picks them up at its next start."""

    def __init__(self, backend: Hypervisor | None) -> None:
        self.backend = backend
        self.consolidations: list[checkpoints.Consolidation] = []  # what this driver did to bound chains
        self.last_quiesce: QuiesceResult | None = None  # how consistent the last live save was

    def _bound_chain(
        self, files: ProjectFiles, project: Project, label: str, top: Path, limit: int | None = None
    ) -> None:
        """Keep a new layer on ``top`` within the chain bound (``top`` is held by no running VM).

        A chain on a remote host is left as it is: its files cannot be rewritten from here.
        """
        if files.layers.remote:
            return
        done = checkpoints.bound_chain(files.layers.dir, top, project.roots[label].format, limit=limit)
        if done is not None:
            self.consolidations.append(done)

    def _check_live_depth(self, files: ProjectFiles, project: Project) -> None:
        """Where a running disk cannot be moved onto a shorter chain, refuse to grow it to what libvirt would refuse."""
        if files.layers.remote:
            self._check_remote_depth(files, project)
            return
        for label, layer in project.live.items():
            files_now = len(checkpoints.chain_files(files.layers.path(layer)))
            if files_now + 1 > checkpoints.RUNNING_CHAIN_LIMIT:
                raise InvalidInput(
                    f"the {label} disk of {project.name!r} is a chain of {files_now} files; a running VM's chain"
                    " cannot be shortened and libvirt refuses more than 200",
                    fix="`vml down`, then `vml state save` (a stopped VM's save consolidates the chain)",
                )

    @staticmethod
    def _check_remote_depth(files: ProjectFiles, project: Project) -> None:
        """A chain on a remote host is never shortened: refuse to grow it to what libvirt would refuse.

        Its length comes from the records (the base, one layer per ancestor state, the live layer), not from
        one call to the host per layer.
        """
        depth = len(refs.ancestors(files.states(), project.current)) + 2
        if depth + 1 > checkpoints.RUNNING_CHAIN_LIMIT:
            raise InvalidInput(
                f"the disks of {project.name!r} are chains of {depth} volumes on {project.uri}, which vmlog cannot"
                " shorten there, and libvirt refuses more than 200",
                fix=f"`vml state export -p {project.name} REF`, then `vml state import` it into a new project",
            )

    def live_has_changes(self, files: ProjectFiles) -> bool:
        project = files.load()
        return any(files.layers.has_changes(name) for name in project.live.values())

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
        """A live qcow2 overlay on the base (and on a blank scratch root), named by its published path."""
        progress("creating the live layer", 0.5)
        new = NewDisks(roots={SYSTEM_DISK: ChainRoot(format=base.qemu_format, image_sha256=base.sha256)})
        new.live[SYSTEM_DISK] = staged.layers.new_name(SYSTEM_DISK)
        base_file = staged.layers.root_image(base.sha256, base.qemu_format, base.path)  # uploaded to a remote host
        staged.layers.create_overlay(new.live[SYSTEM_DISK], base_file, base.qemu_format)
        if scratch_size:
            root = "scratch-root.qcow2"
            staged.layers.create_blank(root, scratch_size)
            new.roots[SCRATCH_DISK] = ChainRoot(format="qcow2", file=root)
            new.live[SCRATCH_DISK] = staged.layers.new_name(SCRATCH_DISK)
            staged.layers.create_overlay(new.live[SCRATCH_DISK], staged.layers.path(root), "qcow2")
        new.disks = [
            DiskSpec(path=published.layers.path(layer), format="qcow2", label=label)
            for label, layer in new.live.items()
        ]
        return new

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
        # the records are read only to refuse a taken name: an unnamed save costs the same at any history
        vm_state = self.check_save(project, files.states() if name else {}, name, memory)
        running = vm_state in (VMState.RUNNING, VMState.PAUSED)
        if files.layers.remote and memory:
            refuse_remote_memory_save(project)
        if memory or running:
            assert self.backend is not None
            if memory:
                self.backend.require(Capability.MEMORY_IMAGE, "save a VM's memory with a state")
            else:
                self.backend.require(Capability.LIVE_SNAPSHOT, "save a state while the VM runs")
        state_id = new_id()
        if vm_state not in (None, VMState.STOPPED) or files.layers.remote:  # a chain that cannot be rewritten now
            self._check_live_depth(files, project)
        else:
            progress("bounding the disk chains", 0.05)
            for label, old in project.live.items():
                self._bound_chain(files, project, label, files.layers.path(old))
        progress("creating the new live layer", 0.1)
        new_live = {label: files.layers.new_name(label) for label in project.live}
        files.layers.create_overlays(
            {new_live[label]: (files.layers.path(old), "qcow2") for label, old in project.live.items()}
        )
        memory_name = self._save_memory(files, project, state_id, progress) if memory else None
        for old in project.live.values():
            files.layers.make_durable(old)
        state = State(
            id=state_id,
            parent=project.current,
            name=name or None,
            message=message,
            author=author,
            created=time.time(),
            layers=dict(project.live),
            spec=dict(project.spec),
            memory=memory_name,
            backend=project.backend if memory_name else None,
        )
        files.write_state(state)
        if running and not memory:
            assert self.backend is not None
            progress("switching the VM to the new live layer", 0.6)
            # one call for all disks: they freeze at the same instant
            tops = {label: files.layers.path(layer) for label, layer in new_live.items()}
            with quiesced(self.backend, project.vm_name) as quiesce:  # guest filesystems frozen where an agent can
                self.backend.swap_disks(project.vm_name, tops)
            self.last_quiesce = quiesce
        project.current = state_id
        project.live = new_live
        files.write(project)  # commit point
        if running and not memory and not files.layers.remote:  # a remote chain cannot be rewritten from here
            self._bound_running_chains(files, project, progress)
        if memory and resume:
            assert self.backend is not None
            progress("resuming the VM", 0.8)
            self.backend.restore_memory_image(files.vm_spec(project), files.state_dir(state_id) / MEMORY_FILE)
        elif vm_state == VMState.STOPPED or (memory and not resume):
            assert self.backend is not None
            self.backend.redefine(files.vm_spec(project))
        progress("saved", 1.0)
        return state

    def _bound_running_chains(self, files: ProjectFiles, project: Project, progress: Progress) -> None:
        """Keep a running VM's chains within the bound: each long one moved onto a new layer over a checkpoint.

        The checkpoint shows what the live layer backs onto (the state just saved), the disk moves
        there by a shallow copy and pivot, and the empty-but-for-seconds-of-writes live layer it
        left is deleted once ``project.json`` names the new one. No file of a state changes. A
        backend that cannot move a running disk leaves the chain to grow (:meth:`_check_live_depth`).
        """
        assert self.backend is not None
        for label, live in list(project.live.items()):
            live_path = files.layers.path(live)
            found = checkpoints.running_checkpoint(files.layers.dir, live_path, project.roots[label].format)
            if found is None:
                continue
            checkpoint, before = found
            progress(f"moving the {label} disk onto a checkpoint", 0.7)
            moved = files.layers.new_name(label)
            files.layers.create_overlay(moved, checkpoint, "qcow2")
            try:
                self.backend.repoint_disks(project.vm_name, {label: files.layers.path(moved)})
            except Unsupported:
                files.layers.remove(moved)
                checkpoints.collect(files.layers.dir)
                return
            project.live[label] = moved
            files.write(project)  # the VM writes into ``moved`` now
            files.layers.remove(live)
            after = len(checkpoints.chain_files(files.layers.path(moved)))
            self.consolidations.append(checkpoints.Consolidation(moved, checkpoint.name, before, after))

    def _save_memory(self, files: ProjectFiles, project: Project, state_id: str, progress: Progress) -> str:
        """The running VM's memory, durable in the new state's directory (the VM stops); its file name."""
        assert self.backend is not None
        progress("saving the memory image", 0.3)
        state_dir = files.state_dir(state_id)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.backend.save_memory_image(project.vm_name, state_dir / MEMORY_FILE)
        fsutil.fsync_file(state_dir / MEMORY_FILE)
        return MEMORY_FILE

    # -- exchange -------------------------------------------------------------------------
    def exchanged_labels(self, project: Project) -> list[str]:
        return sorted(project.live)

    def reading_states(
        self, files: ProjectFiles, project: Project, image: StoredImage, work: Path
    ) -> AbstractContextManager[LayersOf]:
        return nullcontext(chain_tops(files))

    def add_state(
        self, files: ProjectFiles, incoming: IncomingState, *, work: Path, progress: Progress = no_progress
    ) -> State:
        return add_overlay_state(files, incoming, work=work, progress=progress)

    def restore(self, files: ProjectFiles, target: State, *, progress: Progress = no_progress) -> None:
        project = files.load()
        states = files.states()
        vm_state = self.vm_state(project)
        if vm_state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            raise InvalidInput(
                f"the VM of {project.name!r} is {vm_state.value}",
                fix="`vml down` first (or restore with --stop)",
            )
        progress("creating the live layer on the state", 0.2)
        new_live = {label: files.layers.new_name(label) for label in project.live}
        for label in project.live:
            backing, fmt = files.layer_under(project, states, target.id, label)
            self._bound_chain(files, project, label, backing)
            files.layers.create_overlay(new_live[label], backing, fmt)
        old_live = dict(project.live)
        project.current = target.id
        project.live = new_live
        files.write(project)  # commit point
        for name in old_live.values():
            files.layers.remove(name)
        if self.backend is None:
            return
        spec = files.vm_spec(project)
        memory = files.memory_path(target)
        if vm_state == VMState.SAVED:
            self.backend.discard_saved_state(project.vm_name)
        if memory is not None and memory.is_file() and target.backend in (None, project.backend):
            progress("resuming from the state's memory image", 0.6)
            try:
                self.backend.restore_memory_image(spec, memory)
            except InvalidState:
                # an image of another incarnation (a renamed project): the disks are restored, the
                # VM cold-boots from them instead
                self.backend.redefine(spec)
        elif vm_state is not None:
            self.backend.redefine(spec)
        progress("restored", 1.0)

    def remove(self, files: ProjectFiles, state: State, *, progress: Progress = no_progress) -> None:
        project = files.load()
        states = files.states()
        kids = refs.children(states, state.id)
        live_child = project.current == state.id
        count = len(kids) + (1 if live_child else 0)
        if count > 1:
            what = ", ".join(k.label() for k in kids) + (" and the live layer" if live_child else "")
            raise InvalidInput(
                f"state {state.label()} has {count} children ({what}); removing it would need a copy of"
                " its layer in each",
                fix="remove or restore away from all but one of its children first",
            )
        if count == 1:
            if files.layers.remote:  # merging needs the child's backing file rewritten: refused with the way round
                files.layers.rebase(next(iter(state.layers.values())), Path(), "qcow2")
            if live_child:
                vm_state = self.vm_state(project)
                if vm_state not in (None, VMState.STOPPED):
                    raise InvalidInput(
                        f"state {state.label()} is the current state and the VM is {vm_state.value}",
                        fix="`vml down` first, or restore another state",
                    )
            progress("merging the state's layer into its child", 0.3)
            for label in state.layers:
                under, fmt = files.layer_under(project, states, state.parent, label)
                child_layer = project.live[label] if live_child else kids[0].layers[label]
                files_before = len(checkpoints.chain_files(files.layers.path(child_layer)))
                files.layers.rebase(child_layer, under, fmt)
                # the child now sits on the parent's chain, which may be longer than the one it left
                self._bound_chain(files, project, label, files.layers.path(child_layer), limit=files_before + 1)
            if live_child:
                project.current = state.parent
                files.write(project)
                if self.vm_state(project) is not None:
                    assert self.backend is not None
                    self.backend.redefine(files.vm_spec(project))
            else:
                files.rewrite_state(dataclasses.replace(kids[0], parent=state.parent))
        files.delete_state(state.id)
        for name in state.layers.values():
            files.layers.remove(name)
        if not files.layers.remote:
            fsutil.fsync_dir(files.layers.dir)
        checkpoints.collect(files.layers.dir)
        progress("removed", 1.0)


def refuse_remote_memory_save(project: Project) -> None:
    """A save with memory on a remote host: refused whole, rather than done half.

    The host writes a memory image to a path of its own (``virDomainSaveFlags``), outside libvirt's storage API,
    so vmlog could neither keep it with the state nor bring it back here yet.
    """
    raise Unsupported(
        f"{project.name!r} lives on {project.uri}: a state cannot be saved there with the VM's memory yet",
        fix=f"`vml state save` without --with-memory (its disks, while it runs), or `vml down {project.name} --save`"
        " to suspend it on the host",
    )
