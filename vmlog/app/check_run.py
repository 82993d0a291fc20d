"""Running a project's checks: each state booted in a throw-away clone, every result in the logbook."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import Hypervisor
from hypervisors.errors import OperationTimeout, ReportableError, Unsupported
from hypervisors.guest import GuestAgent
from vmlog.app.backend_names import typed_backend
from vmlog.app.projects import resolve_project
from vmlog.app.session import session
from vmlog.checks import record
from vmlog.checks.clone import Clone, remove_leftovers, require_overlay_backend, throwaway_clone
from vmlog.checks.model import DIVERGED, ERROR, Check
from vmlog.checks.runner import CheckResult, errored, run_all
from vmlog.checks.store import CheckFile
from vmlog.context.guest import STANDARD_AGENT, cloud_init_finished, open_guest
from vmlog.errors import InvalidInput, NotFound
from vmlog.projects import refs
from vmlog.projects.backends import driver_for, open_backend
from vmlog.projects.bundle_base import base_of
from vmlog.projects.driver import LayersOf, chain_tops, private_work_dir
from vmlog.projects.model import Project, State
from vmlog.projects.names import vm_name_for
from vmlog.projects.native_tree import is_native_project
from vmlog.projects.release_guest import guest_facts
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace, workspace

EXIT_DIVERGED = 3  # a result is not what it must be: a human should look
EXIT_NOT_EVALUATED = 4  # nothing diverged, but a check could not be run (no boot, no agent)
BOOT_TIMEOUT = 300.0
CLONES_DIR = "check-clones"

ResultCallback = Callable[[CheckResult], None]
StepCallback = Callable[[str], None]


def _quiet(_item: Any) -> None:
    """The callback used when nobody watches."""


@dataclass
class CheckRun:
    """What ``vml check run`` did: every result, the backend the clones ran on, and the exit status it means."""

    project: str
    backend: str
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def diverged(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == DIVERGED]

    @property
    def not_evaluated(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == ERROR]

    @property
    def exit_code(self) -> int:
        """0 all passed; :data:`EXIT_DIVERGED` if any diverged; else :data:`EXIT_NOT_EVALUATED` if any errored."""
        if self.diverged:
            return EXIT_DIVERGED
        return EXIT_NOT_EVALUATED if self.not_evaluated else 0

    def summary(self) -> str:
        passed = len(self.results) - len(self.diverged) - len(self.not_evaluated)
        text = f"{passed} passed, {len(self.diverged)} diverged"
        return text + (f", {len(self.not_evaluated)} not evaluated" if self.not_evaluated else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "backend": self.backend,
            "results": [r.to_dict() for r in self.results],
            "passed": not self.diverged and not self.not_evaluated,
            "summary": self.summary(),
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 1),
        }


def _targets(files: ProjectFiles, project: Project, state_refs: list[str], every: bool) -> list[State]:
    """The states to check: those named, every state with ``every``, else the current one."""
    states = files.states()
    if every:
        return sorted(states.values(), key=lambda s: (s.created, s.id))
    if not state_refs:
        if project.current is None:
            raise InvalidInput(f"project {project.name!r} has no state yet", fix="save one with `vml state save NAME`")
        return [states[project.current]]
    chosen = [refs.resolve(states, project.current, ref) for ref in state_refs]
    return list({s.id: s for s in chosen}.values())


def _open_clone_backend(project: Project, backend_name: str | None) -> Hypervisor:
    """The backend the clones boot on: ``backend_name``, else the project's own (with its options).

    A clone is a qcow2 overlay, so it boots only where vmlog owns the disk chain (kvm); the states of
    a project on a native snapshot tree (VirtualBox, VMware) are read from their snapshots and booted
    there with ``--backend kvm``.
    """
    same = backend_name is None or typed_backend(backend_name) == registry.canonical_name(project.backend)
    if same and is_native_project(project):
        raise Unsupported(
            f"the states of {project.name!r} live in the {project.backend} snapshot tree, and a throw-away clone"
            f" is a qcow2 overlay, which {project.backend} does not boot",
            fix="boot the clones under kvm: `vml check run --backend kvm`",
            backend=project.backend,
        )
    hv = open_backend(project) if same else registry.open_backend(typed_backend(str(backend_name)))
    try:
        require_overlay_backend(hv)
    except BaseException:
        hv.close()
        raise
    return hv


def refuse_remote(project: Project) -> None:
    """A clone is a qcow2 file here backed by the state's layer: a remote project's layers are volumes of its
    host, which no file here can back onto, so the run is refused before anything is made."""
    if project.remote:
        raise Unsupported(
            f"the states of {project.name!r} are volumes on {project.uri}, and a check clone is an overlay file"
            " on this machine, which cannot back onto them",
            fix=f"`vml state export REF -p {project.name} -o FILE` (the bundle carries the checks), then"
            " `vml state import FILE --project NEW` into a project on this machine and `vml check run -p NEW`",
        )


@contextmanager
def _state_disks(ctx: Workspace, files: ProjectFiles, project: Project) -> Iterator[LayersOf]:
    """A state -> its disks as qcow2 files a clone can back onto, valid while the block runs.

    vmlog's own layers for an overlay chain; for a native tree, content layers read from the
    backend's snapshots (the project's VM is not touched) into a private directory deleted afterwards.
    """
    if not is_native_project(project):
        yield chain_tops(files)
        return
    with open_backend(project) as native, private_work_dir(ctx.home.cache, "check-read-") as work:
        driver = driver_for(native)
        image = base_of(ctx.images, project, driver.exchanged_labels(project))
        with driver.reading_states(files, project, image, work) as layers_of:
            yield layers_of


def _wait_for_guest(agent: GuestAgent, kind: str, timeout: float) -> None:
    """Until the agent answers (and, with a standard agent, cloud-init finished), or ``OperationTimeout``."""
    deadline = time.monotonic() + timeout
    agent.wait_ready(timeout)
    if kind != STANDARD_AGENT:
        return
    while not cloud_init_finished(agent):
        if time.monotonic() >= deadline:
            raise OperationTimeout(f"cloud-init did not finish in the clone within {timeout:.0f} s")
        time.sleep(1.0)


def _check_state(
    ctx: Workspace, backend: Hypervisor, files: ProjectFiles, state: State, checks: list[Check],
    *, disks: LayersOf, kind: str, boot_timeout: float, emit: ResultCallback,
) -> None:
    """Boot ``state`` in a clone, run every check in it and ``emit`` each result as it comes.

    A clone that does not come up (or an agent that stops answering) errs every check not yet run.
    """
    vm_name = vm_name_for(ctx.home, f"check-{secrets.token_hex(6)}")
    done: set[str] = set()
    started = time.monotonic()
    try:
        with throwaway_clone(
            backend, state, disks(state), work_parent=_clones_dir(ctx, files), vm_name=vm_name,
            runtime=ctx.home.vm_runtime_dir(vm_name),
        ) as clone:
            with _guest(backend, clone, kind) as agent:
                _wait_for_guest(agent, kind, boot_timeout)
                for result in run_all(agent, checks, state):
                    done.add(result.check)
                    emit(result)
    except ReportableError as exc:
        why = f"the clone of {state.label()} did not come up: {exc.message}"
        for check in checks:
            if check.name not in done:
                emit(errored(check, state, why, time.monotonic() - started))


def _guest(backend: Hypervisor, clone: Clone, kind: str) -> GuestAgent:
    return open_guest(backend, clone.vm_name, kind, clone.spec.channel_socket)


def _clones_dir(ctx: Workspace, files: ProjectFiles) -> Path:
    return ctx.home.cache / CLONES_DIR / files.root.name


def run_checks(
    state_refs: list[str] | None = None,
    *,
    project: str | None = None,
    every: bool = False,
    backend: str | None = None,
    only: list[str] | None = None,
    boot_timeout: float = BOOT_TIMEOUT,
    ctx: Workspace | None = None,
    on_step: StepCallback = _quiet,
    on_result: ResultCallback = _quiet,
) -> CheckRun:
    """Boot each state in a throw-away clone, run the project's checks in it, record every result.

    The states and the project's live layer and VM are never written. A state whose clone does not
    boot or whose agent does not answer gets an ``error`` result for each check; the other states
    still run. ``only`` limits the run to the named checks.
    """
    ctx = workspace(ctx)
    name = resolve_project(project, ctx)
    files = ctx.projects.get(name)
    checks = CheckFile(files.root).load()
    if only:
        missing = sorted(set(only) - {c.name for c in checks})
        if missing:
            raise NotFound(f"project {name!r} has no check called {missing[0]!r}", fix="`vml check list`")
        checks = [c for c in checks if c.name in only]
    if not checks:
        raise InvalidInput(f"project {name!r} has no checks", fix="add one with `vml check add NAME --command CMD ...`")
    begun = time.monotonic()
    with session(ctx, name, record.RUN_ACTION, states=list(state_refs or []), backend=backend) as op:
        proj = files.load()
        refuse_remote(proj)
        targets = _targets(files, proj, list(state_refs or []), every)
        if len(targets) == 1:
            op.state_id = targets[0].id
        kind = guest_facts(files, proj)["agent_kind"]
        if kind is None:
            raise Unsupported(
                f"the guest of {name!r} has no agent vmlog can reach, so checks cannot run in it",
                fix="install the platform's guest agent in the guest (qemu-guest-agent under libvirt; VirtualBox"
                " Guest Additions or open-vm-tools with VMLOG_GUEST_USER and VMLOG_GUEST_PASSWORD set)",
            )
        with _open_clone_backend(proj, backend) as hv, _state_disks(ctx, files, proj) as disks:
            run = CheckRun(project=name, backend=hv.name)
            remove_leftovers(hv, _clones_dir(ctx, files), ctx.home.vm_runtime_dir)

            def emit(result: CheckResult) -> None:
                record.record(ctx.logbook, name, op.operation.id, result)
                run.results.append(result)
                on_result(result)

            for state in targets:
                on_step(f"booting a clone of {state.label()}")
                _check_state(
                    ctx, hv, files, state, checks, disks=disks, kind=kind, boot_timeout=boot_timeout, emit=emit
                )
        run.seconds = time.monotonic() - begun
        op.message = run.summary()
        return run
