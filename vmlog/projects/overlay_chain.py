"""Saving and restoring states on a qcow2 overlay chain that vmlog owns (the libvirt backend).

Write order (data before metadata, ``project.json`` last) is what makes a crash at any instant
repairable:

* save: new empty overlay N on the live layer L -> ``state.json`` naming L -> the VM writes into N
  (``swap_disk``) -> ``project.json`` (current = the state, live = N). Before the last step the
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

from hypervisors.base import Capability, Hypervisor, VMState
from hypervisors.errors import InvalidState
from vmlog import fsutil
from vmlog.errors import AlreadyExists, InvalidInput
from vmlog.projects import refs
from vmlog.projects.driver import Progress, StateDriver, no_progress
from vmlog.projects.model import State, new_id
from vmlog.projects.store import ProjectFiles

MEMORY_FILE = "memory.img"


class OverlayChain(StateDriver):
    """``backend`` may be None: then only the files change and the VM picks them up at its next start."""

    def __init__(self, backend: Hypervisor | None) -> None:
        self.backend = backend

    def _vm_state(self, vm_name: str) -> VMState | None:
        if self.backend is None or not self.backend.exists(vm_name):
            return None
        return self.backend.state(vm_name)

    def live_has_changes(self, files: ProjectFiles) -> bool:
        project = files.load()
        return any(files.layers.has_changes(name) for name in project.live.values())

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
        if name and any(s.name == name for s in states.values()):
            raise AlreadyExists(
                f"project {project.name!r} already has a state called {name!r}",
                fix="choose another name, or rename the old state with `vml state rename`",
            )
        vm_state = self._vm_state(project.vm_name)
        running = vm_state in (VMState.RUNNING, VMState.PAUSED)
        if vm_state not in (None, VMState.STOPPED, VMState.RUNNING, VMState.PAUSED, VMState.CRASHED):
            raise InvalidInput(
                f"cannot save a state of {project.name!r} while its VM is {vm_state.value}",
                fix="`vml up` to resume it (or `vml down --poweroff`), then save",
            )
        if memory and not running:
            raise InvalidInput(
                "a state with memory needs a running VM", fix="`vml up` first, or save without --memory"
            )
        if memory:
            assert self.backend is not None
            self.backend.require(Capability.MEMORY_IMAGE, "save a VM's memory with a state")
        elif running:
            assert self.backend is not None
            self.backend.require(Capability.LIVE_SNAPSHOT, "save a state while the VM runs")

        state_id = new_id()
        progress("creating the new live layer", 0.1)
        new_live = {label: files.layers.new_name(label) for label in project.live}
        for label, old in project.live.items():
            files.layers.create_overlay(new_live[label], files.layers.path(old), "qcow2")
        memory_name = None
        if memory:
            assert self.backend is not None
            progress("saving the memory image", 0.3)
            state_dir = files.state_dir(state_id)
            state_dir.mkdir(parents=True, exist_ok=True)
            self.backend.save_memory_image(project.vm_name, state_dir / MEMORY_FILE)
            fsutil.fsync_file(state_dir / MEMORY_FILE)
            memory_name = MEMORY_FILE
        for old in project.live.values():
            fsutil.fsync_file(files.layers.path(old))
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
            for label, layer in new_live.items():
                self.backend.swap_disk(project.vm_name, label, files.layers.path(layer))
        project.current = state_id
        project.live = new_live
        files.write(project)  # commit point
        if memory and resume:
            assert self.backend is not None
            progress("resuming the VM", 0.8)
            self.backend.restore_memory_image(files.vm_spec(project), files.state_dir(state_id) / MEMORY_FILE)
        elif vm_state == VMState.STOPPED or (memory and not resume):
            assert self.backend is not None
            self.backend.redefine(files.vm_spec(project))
        progress("saved", 1.0)
        return state

    def restore(self, files: ProjectFiles, target: State, *, progress: Progress = no_progress) -> None:
        project = files.load()
        states = files.states()
        vm_state = self._vm_state(project.vm_name)
        if vm_state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            raise InvalidInput(
                f"the VM of {project.name!r} is {vm_state.value}",
                fix="`vml down` first (or restore with --stop)",
            )
        progress("creating the live layer on the state", 0.2)
        new_live = {label: files.layers.new_name(label) for label in project.live}
        for label in project.live:
            backing, fmt = files.layer_under(project, states, target.id, label)
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
            if live_child:
                vm_state = self._vm_state(project.vm_name)
                if vm_state not in (None, VMState.STOPPED):
                    raise InvalidInput(
                        f"state {state.label()} is the current state and the VM is {vm_state.value}",
                        fix="`vml down` first, or restore another state",
                    )
            progress("merging the state's layer into its child", 0.3)
            for label in state.layers:
                under, fmt = files.layer_under(project, states, state.parent, label)
                child_layer = project.live[label] if live_child else kids[0].layers[label]
                files.layers.rebase(child_layer, under, fmt)
            if live_child:
                project.current = state.parent
                files.write(project)
                if self._vm_state(project.vm_name) is not None:
                    assert self.backend is not None
                    self.backend.redefine(files.vm_spec(project))
            else:
                files.rewrite_state(dataclasses.replace(kids[0], parent=state.parent))
        files.delete_state(state.id)
        for name in state.layers.values():
            files.layers.remove(name)
        fsutil.fsync_dir(files.layers.dir)
        progress("removed", 1.0)
