"""Checking and repairing the project store after a crash (``vml doctor`` calls :func:`check_store`).

What a kill -9 can leave, given the write order of :mod:`vmlog.projects.overlay_chain`:
temp files, half-built or half-deleted project directories, state directories without
``state.json``, layers of a killed import, layer files nothing names, an *uncommitted* save (a
state whose layer is still the live layer), a live layer missing. Saved states are never touched except to finish an
interrupted save. Projects on a native-tree backend (VirtualBox, VMware) are also compared with the
hypervisor's snapshot tree (:func:`vmlog.projects.native_reconcile.reconcile`).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypervisors.base import Hypervisor, VMState
from hypervisors.errors import HypervisorError
from vmlog import fsutil, locking
from vmlog.projects import checkpoints, native_reconcile, native_tree
from vmlog.projects.model import Project, State
from vmlog.projects.store import NEW_PREFIX, STATE_FILE, TRASH_PREFIX, ProjectFiles, ProjectStore


@dataclass
class Finding:
    project: str | None
    problem: str
    action: str  # what repair does (or did) about it
    repaired: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "project": self.project,
            "problem": self.problem,
            "action": self.action,
            "repaired": self.repaired,
        }


@dataclass
class StoreReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.repaired for f in self.findings)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "findings": [f.to_dict() for f in self.findings]}


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    fsutil.fsync_dir(path.parent)


def check_store(
    store: ProjectStore, *, repair: bool = False, release_ref=None, backend_for=None, locks_dir: Path | None = None
) -> StoreReport:
    """Check every project; with ``repair`` fix what can be fixed without losing a saved state.

    ``release_ref(sha256, holder)`` drops an image reference held by a half-built or trashed
    project; ``backend_for(project)`` opens its backend (or returns None) so an interrupted live
    save can ask the VM which layer it writes into.
    """
    report = StoreReport()
    if not store.root.is_dir():
        return report
    for entry in sorted(store.root.iterdir()):
        if entry.name.startswith((NEW_PREFIX, TRASH_PREFIX)) and entry.is_dir():
            kind = "half-built" if entry.name.startswith(NEW_PREFIX) else "half-removed"
            finding = Finding(None, f"{kind} project directory {entry.name}", "delete it")
            if repair:
                _release_project_refs(entry, release_ref)
                _remove_tree(entry)
                finding.repaired = True
            report.findings.append(finding)
        elif fsutil.is_temp(entry):
            finding = Finding(None, f"temp file {entry.name}", "delete it")
            if repair:
                entry.unlink(missing_ok=True)
                finding.repaired = True
            report.findings.append(finding)
    for name in store.names():
        busy = locking.holder(locks_dir, name) if locks_dir is not None else None
        if busy is not None:  # being changed right now: its work in progress is not debris
            report.findings.append(Finding(name, f"in use ({busy})", "checked later", repaired=True))
            continue
        files = store.files(name)
        project = files.load()
        # a native-tree project is checked against the hypervisor's snapshot tree, also without repair
        wanted = repair or native_tree.is_native_project(project)
        backend = backend_for(project) if (wanted and backend_for) else None
        try:
            report.findings.extend(check_project(files, repair=repair, backend=backend))
        finally:
            if backend is not None:
                backend.close()
    return report


def _release_project_refs(directory: Path, release_ref) -> None:
    if release_ref is None:
        return
    try:
        project = Project.from_dict(fsutil.read_json(directory / "project.json"))
    except (OSError, ValueError, KeyError):
        return
    for root in project.roots.values():
        if root.image_sha256:
            release_ref(root.image_sha256, f"project:{project.id}")


def _vm_top(backend: Hypervisor | None, project: Project, label: str) -> Path | None:
    """The layer the VM writes into right now, if it runs (None if unknown or stopped)."""
    if backend is None:
        return None
    try:
        if not backend.exists(project.vm_name) or backend.state(project.vm_name) in (VMState.STOPPED,):
            return None
        return Path(backend.disk_tops(project.vm_name)[label])
    except (HypervisorError, KeyError):
        return None


class _Check:
    """The findings of one project's check; with ``repair`` each fix runs as its finding is made."""

    def __init__(self, files: ProjectFiles, repair: bool) -> None:
        self.files, self.repair, self.name = files, repair, files.root.name
        self.findings: list[Finding] = []

    def found(self, problem: str, action: str, fix: Callable[[], object] | None = None) -> None:
        finding = Finding(self.name, problem, action)
        if self.repair and fix is not None:
            fix()
            finding.repaired = True
        self.findings.append(finding)


def check_project(
    files: ProjectFiles, *, repair: bool = False, backend: Hypervisor | None = None
) -> list[Finding]:
    """What is wrong with one project's files (and its native snapshot tree); with ``repair``, fixed."""
    check = _Check(files, repair)
    _debris(check)
    project = files.load()
    states = files.states()
    pending = _interrupted_saves(check, project, states, backend)
    if repair:
        project = files.load()
        states = files.states()
    _references(check, project, states)
    _state_chains(check, project, states)
    if not native_tree.is_native_project(project):
        pending |= _disks_the_vm_moved(check, project, states, backend, pending)
    _live_layers(check, project, states)
    if native_tree.is_native_project(project):
        check.findings.extend(
            Finding(check.name, problem, action, repaired)
            for problem, action, repaired in native_reconcile.reconcile(files, backend, repair=repair)
        )
    _unused_layers(check, files.load() if repair else project, states, pending, vm_known=backend is not None)
    return check.findings


def _debris(check: _Check) -> None:
    """Temp files anywhere in the project, and state directories without ``state.json``."""
    files, found = check.files, check.found
    for path in sorted(files.root.rglob("*")):
        if fsutil.is_temp(path) and path.is_file():
            found(
                f"temp file {path.relative_to(files.root)}",
                "delete it",
                lambda p=path: p.unlink(missing_ok=True),
            )
    # layers of an import killed before they were placed (``.import-*``, ``..import-*.partial-PID``)
    for directory in sorted(files.root.glob("*.import-*")):
        if directory.is_dir() and directory.name.lstrip(".").startswith("import-"):
            found(f"layers of an interrupted import {directory.name}", "delete them",
                  lambda d=directory: _remove_tree(d))
    if files.states_dir.is_dir():
        for directory in sorted(files.states_dir.iterdir()):
            if directory.is_dir() and not (directory / STATE_FILE).is_file():
                found(
                    f"half-written state directory states/{directory.name}",
                    "delete it",
                    lambda d=directory: _remove_tree(d),
                )


def _interrupted_saves(
    check: _Check, project: Project, states: dict[str, State], backend: Hypervisor | None
) -> set[str]:
    """Saves interrupted before their commit point, rolled forward or back; the overlays they will adopt."""
    files, found, repair = check.files, check.found, check.repair
    live_names = set(project.live.values())
    pending: set[str] = set()  # overlays an interrupted save will adopt as the live layer
    for state in sorted(states.values(), key=lambda s: s.created):
        if not live_names.intersection(state.layers.values()):
            continue
        next_live = _next_live(files, project, state, backend)
        if next_live is not None:
            pending.update(next_live.values())

            def roll_forward(state: State = state, next_live: dict[str, str] = next_live) -> None:
                project.current = state.id
                project.live = next_live
                files.write(project)

            found(
                f"save of state {state.label()} was interrupted after its data was written",
                "finish it (the state becomes current)",
                roll_forward,
            )
            live_names = set(project.live.values()) if repair else live_names
        else:
            found(
                f"save of state {state.label()} was interrupted before the VM switched layers",
                "undo it (nothing had been saved yet)",
                lambda s=state: files.delete_state(s.id),
            )
            if repair:
                states.pop(state.id, None)
    return pending


def _disks_the_vm_moved(
    check: _Check, project: Project, states: dict[str, State], backend: Hypervisor | None, pending: set[str]
) -> set[str]:
    """A running VM's disk on a top ``project.json`` does not name: a save killed after moving it onto a checkpoint.

    A running save shortens a long chain by a block copy onto a new layer over a checkpoint and a
    pivot, then names the new layer in ``project.json``. Killed in between, the VM writes into a file
    nothing names. For a running VM the hypervisor's view is the truth: a top in the layers directory
    that backs onto the current state's layer (or a checkpoint showing it) becomes the live layer, and
    the one it replaced, which the VM no longer holds, is deleted as unused. Returns the tops adopted.
    """
    files, found, adopted = check.files, check.found, set()
    frozen = {layer for state in states.values() for layer in state.layers.values()}
    for label, layer in list(project.live.items()):
        top = _vm_top(backend, project, label)
        if top is None or top.name in (layer, *pending) or top.parent.resolve() != files.layers.dir.resolve():
            continue  # as project.json says, an interrupted save's (finished above), or not vmlog's file
        problem = "it is missing or a state's layer" if not top.is_file() or top.name in frozen else None
        problem = problem or _chain_mismatch(files, project, states, top.name, project.current, label)
        if problem is not None:
            found(f"the VM's {label} disk {top.name} is not the live layer {layer}: {problem}",
                  "nothing automatic; report this")
            continue

        def adopt(label: str = label, top: str = top.name) -> None:
            project.live[label] = top
            files.write(project)

        found(
            f"the VM's {label} disk was moved onto {top.name} by an interrupted save",
            "make it the live layer (the VM writes into it)",
            adopt,
        )
        adopted.add(top.name)
    return adopted


def _references(check: _Check, project: Project, states: dict[str, State]) -> None:
    """The current state and parents must exist, and every state's layers."""
    files, found = check.files, check.found
    if project.current is not None and project.current not in states:

        def reset_current() -> None:
            project.current = None
            files.write(project)

        found(
            f"current state {project.current} does not exist", "point the project at no state", reset_current
        )
    for state in states.values():
        if state.parent is not None and state.parent not in states:
            found(
                f"state {state.label()} names a missing parent {state.parent}",
                "nothing (the tree shows it as a root; its layer chain decides its content)",
            )
        for label, layer in state.layers.items():
            if not files.layers.exists(layer):
                found(
                    f"state {state.label()} lost its {label} layer {layer}",
                    "nothing can bring it back; remove the state with `vml state rm`",
                )


def _state_chains(check: _Check, project: Project, states: dict[str, State]) -> None:
    """Each layer must back onto its parent's layer.

    An interrupted merge (rm) leaves a layer that already backs onto its grandparent: finish the
    re-parenting the merge had started.
    """
    files, found, repair = check.files, check.found, check.repair
    for state in sorted(states.values(), key=lambda s: s.created):
        if state.parent is not None and state.parent not in states:
            continue
        for label, layer in state.layers.items():
            problem = _chain_mismatch(files, project, states, layer, state.parent, label)
            if problem is None:
                continue
            parent = states.get(state.parent) if state.parent else None
            if (
                parent is not None
                and _chain_mismatch(files, project, states, layer, parent.parent, label) is None
            ):
                found(
                    f"state {state.label()} was merged with its parent {parent.label()}"
                    " by an interrupted removal",
                    "record its new parent",
                    lambda s=state, p=parent.parent: files.rewrite_state(dataclasses.replace(s, parent=p)),
                )
                if repair:
                    states[state.id] = dataclasses.replace(state, parent=parent.parent)
            else:
                found(f"state {state.label()}: {problem}", "nothing automatic; report this")
            break


def _live_layers(check: _Check, project: Project, states: dict[str, State]) -> None:
    """The live layers must back onto the current state's, and exist."""
    files, found = check.files, check.found
    for label, layer in project.live.items():
        if not files.layers.exists(layer):
            continue
        problem = _chain_mismatch(files, project, states, layer, project.current, label)
        if problem is None:
            continue
        head = states.get(project.current) if project.current else None
        if head is not None and _chain_mismatch(files, project, states, layer, head.parent, label) is None:

            def reparent_live(p: str | None = head.parent) -> None:
                project.current = p
                files.write(project)

            found(
                f"the live layer was merged with {head.label()} by an interrupted removal",
                "make that state's parent the current state",
                reparent_live,
            )
        else:
            found(f"live {label} layer: {problem}", "nothing automatic; report this")

    for label, layer in list(project.live.items()):  # live layers must exist
        if not files.layers.exists(layer):

            def new_live(label: str = label) -> None:
                fresh = files.layers.new_name(label)
                backing, fmt = files.layer_under(project, states, project.current, label)
                files.layers.create_overlay(fresh, backing, fmt)
                project.live[label] = fresh
                files.write(project)

            found(
                f"live {label} layer {layer} is missing", "create an empty one on the current state", new_live
            )


def _unused_layers(
    check: _Check, project: Project, states: dict[str, State], pending: set[str], *, vm_known: bool
) -> None:
    """Layer files nothing names (a live layer, a chain root, a state, an overlay a save will adopt).

    Without the VM's backend, a layer on the current state could be the one a running VM was moved
    onto (:func:`_disks_the_vm_moved`): it is kept until the VM can be asked.
    """
    files, found = check.files, check.found
    used = set(project.live.values()) | pending
    used.update(root.file for root in project.roots.values() if root.file)
    for state in states.values():
        used.update(state.layers.values())
    for layer in files.layers.files():
        if layer in used or fsutil.is_temp(Path(layer)):
            continue
        label = layer.rsplit("-", 1)[0]
        if not vm_known and label in project.live and not _chain_mismatch(files, project, states, layer,
                                                                          project.current, label):
            found(f"layer {layer} belongs to no state but could be the running VM's disk",
                  "keep it until its backend can be asked (`vml doctor --repair` again)")
        else:
            found(
                f"layer {layer} belongs to no state",
                "delete it",
                lambda layer=layer: files.layers.remove(layer),
            )


def _next_live(
    files: ProjectFiles, project: Project, state: State, backend: Hypervisor | None
) -> dict[str, str] | None:
    """The overlays an interrupted save created on the state's layers, if the save can be finished."""
    used = set(project.live.values())
    for other in files.states().values():
        used.update(other.layers.values())
    result: dict[str, str] = {}
    for label, frozen in state.layers.items():
        top = _vm_top(backend, project, label)
        if top is not None and top.name == frozen:
            return None  # the VM still writes into the layer: it is not frozen
        candidates = [
            name
            for name in files.layers.files()
            if name not in used and name.startswith(f"{label}-") and _backing_is(files, name, frozen)
        ]
        if top is not None and top.name in candidates:
            candidates = [top.name]
        if len(candidates) != 1:
            return None
        result[label] = candidates[0]
    return result


def _chain_mismatch(
    files: ProjectFiles,
    project: Project,
    states: dict[str, State],
    layer: str,
    parent: str | None,
    label: str,
) -> str | None:
    """None if ``layer`` backs onto the layer of ``parent`` (or the chain root), else what is wrong."""
    try:
        backing = files.layers.backing_name(layer)
    except HypervisorError as exc:
        return f"layer {layer} cannot be read: {exc.message}"
    expected, _fmt = files.layer_under(project, states, parent, label)
    if backing is None:
        return f"layer {layer} has no backing file"
    if checkpoints.shown_layer(backing) == Path(expected).name:  # consolidated: backs onto its checkpoint copy
        return None
    if (files.layers.dir / backing).resolve() != Path(expected).resolve():
        return f"layer {layer} backs onto {backing}, not {expected.name}"
    return None


def _backing_is(files: ProjectFiles, name: str, frozen: str) -> bool:
    try:
        backing = files.layers.backing_name(name)
    except HypervisorError:
        return False
    return backing is not None and Path(backing).name == frozen
