"""Saving, restoring and removing states as the hypervisor's own snapshots (VirtualBox, VMware).

The hypervisor owns the differencing disks; vmlog's tree mirrors its snapshot tree. Each state
record names its native snapshot (``State.native_id``, immutable like the state id); the VM itself
is the project's live layer and must outlive every state, so it is defined once and kept.

Write order, with a small journal (``native-pending.json``) naming the operation in flight:

* save: journal -> native snapshot -> ``state.json`` (with the native id) -> ``project.json``
  (current = the state) -> journal removed.
* restore: journal -> native restore -> ``project.json`` -> journal removed.
* remove: journal -> native delete -> children re-parented -> ``state.json`` deleted -> journal
  removed.

:func:`reconcile` (called by ``vml doctor``) finishes or forgets a journalled operation, adopts a
native snapshot that has no record, and reports a record whose native snapshot is gone.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from hypervisors import qemu_img, registry
from hypervisors.base import Capability, Hypervisor, NativeSnapshot, SnapshotModel, VMState
from hypervisors.errors import HypervisorError, InvalidState, VMNotFound
from vmlog import fsutil
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.projects import refs
from vmlog.projects.driver import Progress, StateDriver, no_progress
from vmlog.projects.model import Project, State, new_id
from vmlog.projects.store import ProjectFiles

JOURNAL_FILE = "native-pending.json"
ADOPTED_MESSAGE = "adopted from the hypervisor's snapshot tree by `vml doctor --repair`"
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


# -- journal --------------------------------------------------------------------------------
def journal_path(files: ProjectFiles) -> Path:
    return files.root / JOURNAL_FILE


def read_journal(files: ProjectFiles) -> dict[str, Any] | None:
    try:
        data = fsutil.read_json(journal_path(files))
    except FileNotFoundError:
        return None
    except ValueError:  # a torn write cannot happen (atomic), but a hand-edited file can
        return {"op": "unknown"}
    return data if isinstance(data, dict) else {"op": "unknown"}


def _begin(files: ProjectFiles, **entry: Any) -> None:
    fsutil.atomic_write_json(journal_path(files), entry)


def _end(files: ProjectFiles) -> None:
    journal_path(files).unlink(missing_ok=True)
    fsutil.fsync_dir(files.root)


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
    try:
        out = qemu_img.run(["map", "--output=json", "-U", "-f", fmt, str(path)])
    except HypervisorError:
        return True
    return any(entry.get("depth") == 0 and entry.get("data") for entry in json.loads(out))


class NativeTree(StateDriver):
    """States as native snapshots of the project's VM in ``backend``."""

    def __init__(self, backend: Hypervisor) -> None:
        self.backend = backend

    # -- the VM ---------------------------------------------------------------------------
    def _exists(self, project: Project) -> bool:
        return self.backend.exists(project.vm_name)

    def _vm_state(self, project: Project) -> VMState | None:
        if not self._exists(project):
            return None
        try:
            return self.backend.state(project.vm_name)
        except VMNotFound:
            return None

    def ensure_vm(self, files: ProjectFiles, project: Project | None = None) -> None:
        """Define the project's VM if it is not yet: it holds the live disk and every snapshot."""
        project = project or files.load()
        if self._exists(project):
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
        if not self._exists(project):
            return {}
        return {s.id: s for s in self.backend.snapshot_list(project.vm_name)}

    def live_has_changes(self, files: ProjectFiles) -> bool:
        project = files.load()
        if not self._exists(project):
            return False
        return any(_top_has_data(Path(top)) for top in self.backend.disk_tops(project.vm_name).values())

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
        if name and any(s.name == name for s in states.values()):
            raise AlreadyExists(
                f"project {project.name!r} already has a state called {name!r}",
                fix="choose another name, or rename the old state with `vml state rename`",
            )
        vm_state = self._vm_state(project)
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
        vm_state = self._vm_state(project)
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
        _forget(files, project, states, state)
        _end(files)
        progress("removed", 1.0)


def _forget(files: ProjectFiles, project: Project, states: dict[str, State], state: State) -> None:
    """Drop the record of a state whose native snapshot is gone; its children move to its parent."""
    for kid in refs.children(states, state.id):
        files.rewrite_state(dataclasses.replace(kid, parent=state.parent))
    if project.current == state.id:
        project.current = state.parent
        files.write(project)
    files.delete_state(state.id)


# -- reconciliation -------------------------------------------------------------------------
Finding = tuple[str, str, bool]  # problem, action, repaired


def reconcile(files: ProjectFiles, backend: Hypervisor | None, *, repair: bool = False) -> list[Finding]:
    """Compare the state records with the hypervisor's snapshot tree; with ``repair`` make them agree.

    Never deletes a native snapshot: one without a record is adopted as a state (a save that
    crashed after the snapshot, or one taken in the hypervisor's own GUI).
    """
    findings: list[Finding] = []
    project = files.load()
    journal = read_journal(files)
    if backend is None:
        if journal is not None:
            findings.append((
                f"an interrupted {journal.get('op')} of state {str(journal.get('state'))[:8]}",
                f"`vml doctor --repair` with the {project.backend} backend available finishes or undoes it",
                False,
            ))
        return findings
    driver = NativeTree(backend)
    try:
        natives = driver.snapshots(project) if driver._exists(project) else None
    except HypervisorError as exc:
        return [(f"cannot read the {backend.name} snapshot tree: {exc.message}", "nothing; check the backend",
                 False)]
    states = files.states()
    if natives is None:
        lost = [s for s in states.values() if s.native_id]
        if lost:
            findings.append((
                f"the {backend.name} VM {project.vm_name!r} is gone with the snapshots of {len(lost)} states",
                "nothing can bring them back; remove the states with `vml state rm` or the project",
                False,
            ))
        if journal is not None:
            if repair:
                _end(files)
            findings.append((f"an interrupted {journal.get('op')} on a missing VM", "forget it", repair))
        return findings

    claimed: set[str] = set()
    if journal is not None:
        if journal.get("op") == "save" and journal.get("state") not in states:
            candidates = _save_candidates(states, natives, journal)
            claimed.update(n.id for n in candidates if len(candidates) == 1)
        findings.append(_finish(files, driver, project, states, natives, journal, repair))
        if repair:
            project = files.load()
            states = files.states()
            natives = driver.snapshots(project)

    mapped = {s.native_id: s for s in states.values() if s.native_id}
    claimed.update(mapped)
    for node in _parents_first(natives):
        if node.id in claimed:
            continue
        parent = mapped.get(node.parent_id) if node.parent_id else None
        action = "adopt it as a state"
        if repair:
            taken = {s.name for s in states.values()}
            state = State(
                id=new_id(),
                parent=parent.id if parent else None,
                name=node.name if node.name not in taken else None,
                message=ADOPTED_MESSAGE,
                author="vml doctor",
                created=time.time(),
                layers={},
                spec=dict(project.spec),
                backend=project.backend if node.has_memory else None,
                native_id=node.id,
            )
            files.write_state(state)
            states[state.id] = state
            mapped[node.id] = state
        findings.append((f"{backend.name} snapshot {node.name!r} ({node.id}) has no state record", action, repair))
    for state in sorted(states.values(), key=lambda s: s.created):
        if state.native_id is None or state.native_id not in natives:
            findings.append((
                f"state {state.label()}: its {backend.name} snapshot {state.native_id} is gone",
                f"nothing can bring it back; `vml state rm {state.id[:8]}` forgets the state",
                False,
            ))
            continue
        native_parent = natives[state.native_id].parent_id
        expected = mapped[native_parent].id if native_parent in mapped else None
        if native_parent is not None and native_parent not in mapped:
            continue  # a parent that is itself unaccounted for was reported above
        if state.parent != expected:
            if repair:
                files.rewrite_state(dataclasses.replace(state, parent=expected))
            findings.append((
                f"state {state.label()} has parent {str(state.parent)[:8]} in vmlog but"
                f" {str(expected)[:8]} in {backend.name}",
                "record the hypervisor's parent",
                repair,
            ))
    return findings


def _parents_first(natives: dict[str, NativeSnapshot]) -> list[NativeSnapshot]:
    ordered: list[NativeSnapshot] = []
    seen: set[str] = set()
    pending = list(natives.values())
    while pending:
        ready = [n for n in pending if n.parent_id is None or n.parent_id in seen or n.parent_id not in natives]
        if not ready:  # a cycle cannot happen in a tree; take the rest as they are
            ready = pending
        for node in ready:
            ordered.append(node)
            seen.add(node.id)
        pending = [n for n in pending if n.id not in seen]
    return ordered


def _save_candidates(
    states: dict[str, State], natives: dict[str, NativeSnapshot], journal: dict[str, Any]
) -> list[NativeSnapshot]:
    """Native snapshots an interrupted save may have taken: unrecorded children of its parent's snapshot."""
    mapped = {s.native_id for s in states.values() if s.native_id}
    parent = states.get(journal.get("parent") or "")
    parent_native = parent.native_id if parent else None
    return [n for n in natives.values() if n.id not in mapped and n.parent_id == parent_native]


def _finish(
    files: ProjectFiles,
    driver: NativeTree,
    project: Project,
    states: dict[str, State],
    natives: dict[str, NativeSnapshot],
    journal: dict[str, Any],
    repair: bool,
) -> Finding:
    """Finish or undo the journalled operation (roll forward whenever the hypervisor got that far)."""
    op = journal.get("op")
    state_id = str(journal.get("state"))
    if op == "save":
        if state_id in states:
            if repair:
                project.current = state_id
                files.write(project)
                _end(files)
            return (f"save of state {state_id[:8]} was interrupted after its record was written",
                    "finish it (the state becomes current)", repair)
        parent = states.get(journal.get("parent") or "")
        taken = _save_candidates(states, natives, journal)
        if len(taken) == 1:
            if repair:
                node = taken[0]
                files.write_state(State(
                    id=state_id,
                    parent=parent.id if parent else None,
                    name=journal.get("name"),
                    message=str(journal.get("message") or ""),
                    author=str(journal.get("author") or ""),
                    created=float(journal.get("created") or time.time()),
                    layers={},
                    spec=dict(project.spec),
                    backend=project.backend if node.has_memory else None,
                    native_id=node.id,
                ))
                project.current = state_id
                files.write(project)
                _end(files)
            return (f"save of state {state_id[:8]} was interrupted after the snapshot was taken",
                    "record it (the state becomes current)", repair)
        if repair:
            _end(files)
        return (f"save of state {state_id[:8]} was interrupted before the snapshot was taken",
                "forget it (nothing had been saved)", repair)
    if op == "restore":
        target = states.get(state_id)
        if target is None or target.native_id not in natives:
            if repair:
                _end(files)
            return (f"restore of state {state_id[:8]} was interrupted and the state is gone", "forget it", repair)
        vm_state = driver._vm_state(project)
        if vm_state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            return (f"restore of state {target.label()} was interrupted and the VM runs now",
                    "nothing yet: `vml down`, then `vml doctor --repair` restores it again", False)
        if repair:
            driver.restore(files, target)
        return (f"restore of state {target.label()} was interrupted", "restore it again", repair)
    if op == "remove":
        state = states.get(state_id)
        if state is None:
            if repair:
                _end(files)
            return (f"removal of state {state_id[:8]} was interrupted after its record was deleted",
                    "nothing left to do", repair)
        if state.native_id in natives:
            if repair:
                _end(files)
            return (f"removal of state {state.label()} was interrupted before its snapshot was deleted",
                    "keep the state", repair)
        if repair:
            _forget(files, project, states, state)
            _end(files)
        return (f"removal of state {state.label()} was interrupted after its snapshot was deleted",
                "finish it", repair)
    if repair:
        _end(files)
    return (f"unreadable journal {JOURNAL_FILE}", "delete it", repair)
