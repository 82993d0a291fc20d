"""Reconciling a native-tree project's state records with the hypervisor's snapshot tree (``vml doctor``).

:func:`reconcile` finishes or forgets a journalled operation, adopts a native snapshot that has no
record, and reports a record whose native snapshot is gone. It never deletes a native snapshot.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hypervisors.base import Hypervisor, NativeSnapshot, VMState
from hypervisors.errors import HypervisorError
from vmlog.projects.model import Project, State, new_id
from vmlog.projects.native_journal import JOURNAL_FILE, read_journal
from vmlog.projects.native_journal import end as _end
from vmlog.projects.native_tree import NativeTree, forget
from vmlog.projects.store import ProjectFiles

ADOPTED_MESSAGE = "adopted from the hypervisor's snapshot tree by `vml doctor --repair`"

Finding = tuple[str, str, bool]  # problem, action, repaired


def reconcile(files: ProjectFiles, backend: Hypervisor | None, *, repair: bool = False) -> list[Finding]:
    """Compare the state records with the hypervisor's snapshot tree; with ``repair`` make them agree.

    Never deletes a native snapshot: one without a record is adopted as a state (a save that
    crashed after the snapshot, or one taken in the hypervisor's own GUI).
    """
    project = files.load()
    journal = read_journal(files)
    if backend is None:
        if journal is None:
            return []
        return [(
            f"an interrupted {journal.get('op')} of state {str(journal.get('state'))[:8]}",
            f"`vml doctor --repair` with the {project.backend} backend available finishes or undoes it",
            False,
        )]
    driver = NativeTree(backend)
    try:
        natives = driver.snapshots(project) if driver.backend.exists(project.vm_name) else None
    except HypervisorError as exc:
        return [(f"cannot read the {backend.name} snapshot tree: {exc.message}", "nothing; check the backend",
                 False)]
    states = files.states()
    if natives is None:
        return _vm_gone(files, backend, project, states, journal, repair)
    findings: list[Finding] = []
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
    findings += _adopt_unrecorded(files, backend, project, states, natives, mapped, claimed, repair)
    findings += _check_parents(files, backend, states, natives, mapped, repair)
    return findings


def _vm_gone(
    files: ProjectFiles, backend: Hypervisor, project: Project, states: dict[str, State],
    journal: dict[str, Any] | None, repair: bool,
) -> list[Finding]:
    """The findings when the VM holding every snapshot is gone: its states are lost, a journal is moot."""
    findings: list[Finding] = []
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


def _adopt_unrecorded(
    files: ProjectFiles, backend: Hypervisor, project: Project, states: dict[str, State],
    natives: dict[str, NativeSnapshot], mapped: dict[str, State], claimed: set[str], repair: bool,
) -> list[Finding]:
    """Native snapshots no record claims, adopted as states with ``repair`` (``states``/``mapped`` grow)."""
    findings: list[Finding] = []
    for node in _parents_first(natives):
        if node.id in claimed:
            continue
        parent = mapped.get(node.parent_id) if node.parent_id else None
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
        findings.append((f"{backend.name} snapshot {node.name!r} ({node.id}) has no state record",
                         "adopt it as a state", repair))
    return findings


def _check_parents(
    files: ProjectFiles, backend: Hypervisor, states: dict[str, State], natives: dict[str, NativeSnapshot],
    mapped: dict[str, State], repair: bool,
) -> list[Finding]:
    """Records whose snapshot is gone, and parents that differ from the hypervisor's (recorded with ``repair``)."""
    findings: list[Finding] = []
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
        vm_state = driver.vm_state(project)
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
            forget(files, project, states, state)
            _end(files)
        return (f"removal of state {state.label()} was interrupted after its snapshot was deleted",
                "finish it", repair)
    if repair:
        _end(files)
    return (f"unreadable journal {JOURNAL_FILE}", "delete it", repair)
