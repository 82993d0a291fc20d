"""States: save, list, show, restore, rename and remove the states of a project."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hypervisors.base import Capability, VMState
from vmlog.app.listings import draw_tree, project_states
from vmlog.app.logbook import LoggedNote, SenderRecord, sender_records
from vmlog.app.projects import load, resolve_project
from vmlog.app.results import MappingResult
from vmlog.app.session import session
from vmlog.errors import AlreadyExists, InvalidInput
from vmlog.logbook.book import who
from vmlog.projects import current as current_project
from vmlog.projects import refs, release_records
from vmlog.projects.backends import driver_for, open_backend, unsaved_changes, vm_state
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import State
from vmlog.projects.release_records import ReleaseOutcome
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace, workspace

AUTOSAVE_MESSAGE = "auto-saved before restore"


def save_state(
    project_name: str | None = None,
    name: str | None = None,
    *,
    message: str = "",
    memory: bool = False,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> State:
    """Freeze the live layer as a new state (O(1) in disk size, also while the VM runs)."""
    ctx = workspace(ctx)
    project_name = resolve_project(project_name, ctx)
    with session(ctx, project_name, "state save", name=name, memory=memory) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        if memory:
            release_records.refuse_memory_save(project, "save the memory of")
        with open_backend(project) as backend:
            driver = driver_for(backend)
            state = driver.save(files, name=name, message=message, author=who(), memory=memory, progress=progress)
        state = release_records.record_in_state(files, state)  # the releases' exact revisions
        op.state_id = state.id
        op.message = _with_consolidations(message or state.name, driver)
        quiesce = getattr(driver, "last_quiesce", None)
        if quiesce is not None:  # a live save: say whether the guest's filesystems were frozen for it
            op.message = "; ".join(filter(None, [op.message, quiesce.describe()]))
        return state


def _with_consolidations(message: str | None, driver: object) -> str | None:
    """The logbook message, plus what bounding the disk chains did (consolidations are logged, never silent)."""
    done = [c.describe() for c in getattr(driver, "consolidations", [])]
    if not done:
        return message
    return "; ".join([*([message] if message else []), *done])


states = project_states  # a project and its states by id: one reading for the quick and the full listing


def layer_sizes(project_name: str | None = None, *, ctx: Workspace | None = None) -> dict[str, int | None]:
    """Disk space each state's own frozen layers (and memory image) take, by state id.

    ``None`` where vmlog holds no layer of its own (a native snapshot tree keeps it in the hypervisor).
    """
    files, _project = load(project_name, ctx)
    return sizes_of(files, files.states())


def sizes_of(files: ProjectFiles, all_states: dict[str, State]) -> dict[str, int | None]:
    """:func:`layer_sizes` of states already read; a remote project's layers are measured as volumes of its host."""
    sizes: dict[str, int | None] = {}
    for state in all_states.values():
        if not state.layers and not state.memory:
            sizes[state.id] = None
            continue
        memory = files.state_dir(state.id) / state.memory if state.memory else None
        sizes[state.id] = sum(files.layers.allocated(name) for name in state.layers.values()) + (
            memory.stat().st_blocks * 512 if memory is not None and memory.exists() else 0
        )
    return sizes


def state_tree(project_name: str | None = None, *, ctx: Workspace | None = None) -> list[str]:
    files, project = load(project_name, ctx)
    all_states = files.states()
    dirty = unsaved_changes(files, project)
    return draw_tree(all_states, project, dirty)


@dataclass(frozen=True)
class StateDetails(MappingResult):
    """One state as ``vml state show`` shows it: its record, where it sits in the tree, its notes.

    ``sender_logbook`` holds the rows an imported state arrived with (what its sender did and noted).
    """

    state: State
    current: bool
    children: list[str]
    notes: list[LoggedNote]
    sender_logbook: list[SenderRecord]
    layer_paths: dict[str, str] | None = None  # disk label -> where the state's frozen layer is

    def to_dict(self) -> dict[str, Any]:
        data = self.state.to_dict()
        if self.layer_paths:  # the stored spec is a template: its managed disks show the state's own layers
            disks = data["spec"].get("disks") or []
            data["spec"]["disks"] = [
                {**d, "path": self.layer_paths[d["label"]]} if d.get("label") in self.layer_paths else d for d in disks
            ]
        return {
            **data,
            "current": self.current,
            "children": self.children,
            "notes": [n.to_dict() for n in self.notes],
            "sender_logbook": [r.row for r in self.sender_logbook],
        }


def show_state(project_name: str | None, ref: str, *, ctx: Workspace | None = None) -> StateDetails:
    ctx = workspace(ctx)
    files, project = load(project_name, ctx)
    all_states = files.states()
    state = refs.resolve(all_states, project.current, ref)
    return StateDetails(
        state=state,
        current=state.id == project.current,
        children=[c.id for c in refs.children(all_states, state.id)],
        notes=[LoggedNote(**vars(n)) for n in ctx.logbook.notes(project=project.name, state=state.id)],
        sender_logbook=sender_records(files, project.name, state.id),
        layer_paths={label: str(files.layers.path(name)) for label, name in state.layers.items()},
    )


@dataclass
class RestoreResult(MappingResult):
    """What ``vml state restore`` did: the state now current, the auto-save made first, the releases mounted."""

    state: str  # the restored state's id
    autosaved: str | None = None  # the id of the state unsaved work was saved as
    releases: ReleaseOutcome | None = None
    running: bool = False  # the VM runs again (a memory state resumes it)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "autosaved": self.autosaved,
            "releases": self.releases.to_dict() if self.releases is not None else None,
            "running": self.running,
        }


def restore_state(
    project_name: str | None,
    ref: str,
    *,
    discard: bool = False,
    stop: bool = False,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> RestoreResult:
    """Go back to state ``ref`` (branching the tree). Unsaved work is auto-saved first unless ``discard``.

    A running or suspended VM is refused unless ``stop``: then it is saved with its memory (if the
    backend can) or shut down, so nothing is lost.
    """
    ctx = workspace(ctx)
    project_name = resolve_project(project_name, ctx)
    with session(ctx, project_name, "state restore", ref=ref, discard=discard) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        target = refs.resolve(files.states(), project.current, ref)
        op.state_id = target.id
        result = RestoreResult(target.id)
        with open_backend(project) as backend:
            driver = driver_for(backend)
            vm = vm_state(backend, project.vm_name)
            if vm not in (VMState.STOPPED, VMState.CRASHED):
                if not stop and not discard:
                    raise InvalidInput(
                        f"the VM of {project.name!r} is {vm.value}; restoring would lose what it holds"
                        " in memory",
                        fix="`vml down` first, or pass --stop (auto-saves it with its memory) or --discard",
                    )
                if discard:
                    backend.poweroff(project.vm_name)
                    if vm_state(backend, project.vm_name) == VMState.SAVED:
                        backend.discard_saved_state(project.vm_name)
                else:
                    if vm == VMState.SAVED:
                        progress("resuming the suspended VM to save it", 0.05)
                        backend.start(project.vm_name)
                    if backend.can(Capability.MEMORY_IMAGE) and not release_records.shares_memory_block(project):
                        progress("auto-saving the running VM with its memory", 0.1)
                        saved = driver.save(
                            files,
                            name=None,
                            message=AUTOSAVE_MESSAGE,
                            author=who(),
                            memory=True,
                            resume=False,
                        )
                        result.autosaved = saved.id
                    else:
                        progress("shutting the VM down", 0.1)
                        backend.shutdown(project.vm_name)
            elif vm == VMState.CRASHED:
                backend.poweroff(project.vm_name)
            if result.autosaved is None and not discard and driver.live_has_changes(files):
                progress("auto-saving unsaved changes", 0.2)
                saved = driver.save(files, name=None, message=AUTOSAVE_MESSAGE, author=who(), memory=False)
                result.autosaved = saved.id
            driver.restore(files, target, progress=progress)
            progress("mounting the state's releases", 0.8)
            from vmlog.projects.releases import apply_state  # mounting releases: only a restore needs it

            releases = apply_state(files, target)
            result.releases = releases
            result.running = vm_state(backend, project.vm_name) == VMState.RUNNING
        op.message = _with_consolidations(
            f"restored {target.label()}"
            + (f", unsaved work auto-saved as {result.autosaved[:8]}" if result.autosaved else "")
            + "".join(f"; {w}" for w in releases.warnings),
            driver,
        )
        current_project.set_(ctx.home.data, project_name)
        return result


def remove_state(
    project_name: str | None, ref: str, *, ctx: Workspace | None = None, progress: Progress = no_progress
) -> State:
    ctx = workspace(ctx)
    project_name = resolve_project(project_name, ctx)
    with session(ctx, project_name, "state rm", ref=ref) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        state = refs.resolve(files.states(), project.current, ref)
        op.state_id = state.id
        with open_backend(project) as backend:
            driver = driver_for(backend)
            driver.remove(files, state, progress=progress)
        op.message = _with_consolidations(f"removed {state.label()}", driver)
        return state


def rename_state(project_name: str | None, ref: str, new_name: str, *, ctx: Workspace | None = None) -> State:
    ctx = workspace(ctx)
    project_name = resolve_project(project_name, ctx)
    with session(ctx, project_name, "state rename", ref=ref, name=new_name) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        all_states = files.states()
        state = refs.resolve(all_states, project.current, ref)
        if any(s.name == new_name and s.id != state.id for s in all_states.values()):
            raise AlreadyExists(f"a state called {new_name!r} exists", fix="choose another name")
        renamed = dataclasses.replace(state, name=new_name)
        files.rewrite_state(renamed)
        op.state_id = state.id
        op.message = f"{state.name or state.id[:8]} -> {new_name}"
        return renamed

