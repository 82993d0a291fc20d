"""Running a project's VM: up, down, status, the console, and switching between projects."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors.base import Hypervisor, VMState
from hypervisors.errors import ReportableError
from vmlog import locking
from vmlog.app.projects import load, resolve_project, vm_status
from vmlog.app.results import MappingResult, VMStatus
from vmlog.app.session import session
from vmlog.context.quiesce import sync_guest_clock
from vmlog.errors import InvalidInput, NotFound
from vmlog.projects import current as current_project
from vmlog.projects import release_records
from vmlog.projects.backends import open_backend, unsaved_changes, vm_state
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import Project
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace, workspace


def start_vm(backend: Hypervisor, files: ProjectFiles, project: Project) -> list[str]:
    """Start or resume the VM; on a cold boot its releases are shared in. Returns warnings."""
    spec = files.vm_spec(project)
    for path in (spec.serial_log, spec.channel_socket):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if not backend.exists(project.vm_name):
        backend.define(spec)
    state = backend.state(project.vm_name)
    if state in (VMState.RUNNING, VMState.TRANSITIONING):
        return []
    if state == VMState.PAUSED:
        backend.resume(project.vm_name)
        return []
    booting = state != VMState.SAVED
    from vmlog.projects import releases  # sharing releases in: only a boot needs it (``status`` would pay 0.1 s)

    warnings = releases.before_boot(files, project) if booting else []
    if state == VMState.CRASHED:
        backend.poweroff(project.vm_name)
        state = VMState.STOPPED
    if state == VMState.STOPPED:
        backend.redefine(spec)  # project.json decides which layers the VM writes into
    if spec.channel_socket is not None and spec.channel_socket.exists():
        spec.channel_socket.unlink()  # a stale socket of the last run; the hypervisor creates a new one
    backend.start(project.vm_name)
    return warnings + (releases.after_boot(files, project) if booting else [])


def up(name: str | None = None, *, ctx: Workspace | None = None, progress: Progress = no_progress) -> str:
    """Start the project's VM (resuming it if it was suspended); it becomes the current project."""
    ctx = workspace(ctx)
    name = resolve_project(name, ctx)
    with session(ctx, name, "up") as op:
        files = ctx.projects.get(name)
        project = files.load()
        op.state_id = project.current
        with open_backend(project) as backend:
            before = vm_state(backend, project.vm_name)
            progress("starting the VM" if before == VMState.STOPPED else "resuming the VM", None)
            warnings = start_vm(backend, files, project)
            if before == VMState.SAVED:  # the guest clock stood still while the VM was saved
                clock = sync_guest_clock(backend, project.vm_name)
                warnings.append(clock or "guest clock set")
        op.message = (
            "resumed"
            if before == VMState.SAVED
            else ("already running" if before == VMState.RUNNING else "booted")
        ) + "".join(f"; {w}" for w in warnings)
        current_project.set_(ctx.home.data, name)
        return op.message


DOWN_MODES = ("shutdown", "save", "poweroff")


def down(
    name: str | None = None,
    *,
    mode: str = "shutdown",
    timeout: float = 60.0,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> None:
    """Stop the VM: ACPI shutdown (default), ``save`` (suspend with memory) or ``poweroff``."""
    ctx = workspace(ctx)
    if mode not in DOWN_MODES:
        raise InvalidInput(f"unknown stop mode {mode!r}", fix=f"use one of {', '.join(DOWN_MODES)}")
    name = resolve_project(name, ctx)
    with session(ctx, name, "down", mode=mode) as op:
        files = ctx.projects.get(name)
        project = files.load()
        op.state_id = project.current
        with open_backend(project) as backend:
            state = vm_state(backend, project.vm_name)
            if state in (VMState.STOPPED, VMState.SAVED):
                op.message = f"already {state.value}"
                return
            progress(f"{mode} of the VM", None)
            if mode == "save":
                release_records.refuse_memory_save(project, "suspend")
                backend.suspend(project.vm_name)
            elif mode == "poweroff":
                backend.poweroff(project.vm_name)
            else:
                backend.shutdown(project.vm_name, timeout=timeout)


@dataclass(frozen=True)
class RunStatus(MappingResult):
    """What ``vml status`` shows: the VM, the state it is on, unsaved work, and who is changing the project now."""

    project: str
    vm_name: str
    backend: str
    vm: VMStatus
    state: str | None  # the current state's id
    state_name: str | None
    unsaved_changes: bool
    serial_log: str | None
    busy: str | None  # the action and pid holding the project's lock

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "vm_name": self.vm_name,
            "backend": self.backend,
            "vm": str(self.vm),
            "state": self.state,
            "state_name": self.state_name,
            "unsaved_changes": self.unsaved_changes,
            "serial_log": self.serial_log,
            "busy": self.busy,
        }


def status(name: str | None = None, *, ctx: Workspace | None = None) -> RunStatus:
    ctx = workspace(ctx)
    files, project = load(name, ctx)
    states = files.states()
    head = states.get(project.current) if project.current else None
    return RunStatus(
        project=project.name,
        vm_name=project.vm_name,
        backend=project.backend,
        vm=vm_status(project),
        state=head.id if head else None,
        state_name=head.name if head else None,
        unsaved_changes=unsaved_changes(files, project),
        serial_log=project.spec.get("serial_log"),
        busy=locking.holder(ctx.home.locks, project.name),
    )


def console_tail(name: str | None = None, *, lines: int = 40, ctx: Workspace | None = None) -> str:
    """The last lines of the guest's serial console log."""
    ctx = workspace(ctx)
    _files, project = load(name, ctx)
    log = project.spec.get("serial_log")
    if not log or not Path(log).is_file():
        raise NotFound(
            f"project {project.name!r} has no console log yet", fix=f"`vml up {project.name}` first"
        )
    text = Path(log).read_bytes()[-256 * 1024 :].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def console_command(name: str | None = None, *, ctx: Workspace | None = None) -> list[str]:
    """The command that attaches a terminal to the project's running VM console (``Unsupported`` if none)."""
    ctx = workspace(ctx)
    _files, project = load(name, ctx)
    with open_backend(project) as backend:
        return backend.console_command(project.vm_name)


@dataclass
class SwitchResult(MappingResult):
    """What ``vml switch`` did: which projects it left (suspended or not) and how the target was before.

    ``source`` is the first project suspended (or the one the current pointer named); ``left`` lists every
    project whose VM the switch suspended, since more than one may have been running.
    """

    source: str | None
    target: str
    suspended: bool = False
    warnings: list[str] = field(default_factory=list)
    target_was: VMState | None = None
    left: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.target,
            "suspended": self.suspended,
            "suspended_projects": self.left,
            "warnings": self.warnings,
            "target_was": self.target_was.value if self.target_was else None,
        }


def _resume(files: ProjectFiles) -> None:
    """Undo of a switch's suspend: start the project's VM again where it was."""
    project = files.load()
    with open_backend(project) as backend:
        start_vm(backend, files, project)


def _runs(project: Project) -> bool:
    """Whether the project's VM runs (or is paused) now; an unreachable backend counts as not running."""
    try:
        with open_backend(project) as backend:
            return vm_state(backend, project.vm_name) in (VMState.RUNNING, VMState.PAUSED)
    except ReportableError:
        return False


def running_projects(ctx: Workspace | None = None, *, besides: str | None = None) -> list[str]:
    """The projects whose VM runs now, read from the hypervisors rather than from the current pointer."""
    ctx = workspace(ctx)
    found = []
    for name in sorted(ctx.projects.names()):
        if name == besides:
            continue
        try:
            project = ctx.projects.get(name).load()
        except ReportableError:
            continue
        if _runs(project):
            found.append(name)
    return found


def switch(
    target: str, *, source: str | None = None, ctx: Workspace | None = None, progress: Progress = no_progress
) -> SwitchResult:
    """Suspend every running project's VM (memory kept) and resume ``target`` where it was, or boot it.

    The VMs to suspend are those the hypervisors report running, not only the one the current pointer names,
    so a switch never leaves two VMs running. If the target cannot start, the suspended VMs are resumed
    again, so a failed switch leaves things as they were.
    """
    ctx = workspace(ctx)
    pointer = source or current_project.get(ctx.home.data)
    others = running_projects(ctx, besides=target)
    with session(ctx, [target, *others], "switch", source=pointer, target=target) as op:
        result = SwitchResult(others[0] if others else (pointer if pointer != target else None), target)
        target_files = ctx.projects.get(target)
        target_project = target_files.load()
        for name in others:
            source_files = ctx.projects.get(name)
            source_project = source_files.load()
            with open_backend(source_project) as backend:
                if vm_state(backend, source_project.vm_name) not in (VMState.RUNNING, VMState.PAUSED):
                    continue
                release_records.refuse_memory_save(source_project, "suspend")
                progress(f"suspending {name}", 0.2)
                backend.suspend(source_project.vm_name)
            op.on_rollback(lambda files=source_files: _resume(files))
            result.left.append(name)
        result.suspended = bool(result.left)
        if result.left:
            result.source = result.left[0]
        with open_backend(target_project) as backend:
            before = vm_state(backend, target_project.vm_name)
            progress(f"{'resuming' if before == VMState.SAVED else 'starting'} {target}", 0.6)
            result.warnings = start_vm(backend, target_files, target_project)
        result.target_was = before
        op.state_id = target_project.current
        left = ", ".join(result.left) or "-"
        op.message = f"{left} -> {target} ({'resumed' if before == VMState.SAVED else before.value})"
        current_project.set_(ctx.home.data, target)
        progress("switched", 1.0)
        return result
