"""``setup``: pick a backend, pull and verify the appliance, create and contextualise the project, boot it.

The CLI's ``vml setup`` and the GUI's "Set up" button both call :func:`setup`. It is idempotent: a
project that exists is not created again; it is completed if an earlier run was cut short, started
if it is stopped, and reported if it already runs. A run cancelled (or failed) before the project
was contextualised removes the project it created; the partial download stays for the next run.

What setup learnt about a project is kept next to it in ``<project>/setup/``: ``setup.json`` (the
appliance, how the guest reports ready, the SSH forward), ``context.json`` and the seed ISO. The
steps are use cases of :mod:`vmlog.app.appliances` and :mod:`vmlog.app.setup_project`; this module
only strings them together and reports the phases.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vmlog.app import running
from vmlog.app.appliances import PullEvent, choose_backend, find_appliance, pull_for_backend
from vmlog.app.setup_project import (
    Context,
    GuestNotReady,
    SshAccess,
    VMState,
    Workspace,
    complete_setup_project,
    create_setup_project,
    default_context,
    overrides_ignored,
    project_exists,
    reach_facts,
    set_guest_clock,
    setup_logbook_row,
    setup_project_name,
    ssh_access,
    vm_state_of,
    wait_until_ready,
)
from vmlog.errors import AlreadyExists, Cancelled
from vmlog.setup.events import SetupEvent, SetupProgress, no_events

__all__ = ["DEFAULT_APPLIANCE", "SetupResult", "SshAccess", "setup", "ssh_access"]

DEFAULT_APPLIANCE = "cernvm"
DEFAULT_READY_TIMEOUT = 900.0


@dataclass
class SetupResult:
    project: str
    vm_name: str
    backend: str
    appliance: str
    version: str
    created: bool  # this run created the project
    vm_before: str  # the VM's state when this run found it ("absent" for a new project)
    ready_by: str | None  # "agent", "ssh", "console" or None (nothing to wait for)
    hostname: str
    console_log: str | None
    agent_socket: str | None
    ssh: SshAccess | None
    warnings: list[str] = field(default_factory=list)

    @property
    def already_running(self) -> bool:
        return self.vm_before == VMState.RUNNING.value

    def next_steps(self) -> list[tuple[str, str]]:
        """(command, what it does) for reaching and stopping the VM."""
        steps = [(f"vml console {self.project}", "the guest's serial console (-f to follow)")]
        if self.ssh is not None and self.ssh.reachable:
            steps.append((f"vml ssh {self.project}", f"log in as {self.ssh.user} (port {self.ssh.port})"))
        steps.append((f"vml down {self.project}", "shut the VM down (--save keeps its memory)"))
        return steps

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "ssh"}
        data["ssh"] = self.ssh.to_dict() if self.ssh else None
        data["already_running"] = self.already_running
        data["next_steps"] = [{"command": c, "what": w} for c, w in self.next_steps()]
        return data


def _check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"setup cancelled {what}", fix="run `vml setup` again; it continues where it stopped")


def _reporter(progress: SetupProgress) -> Callable[[str, str], None]:
    """A (phase, message) callback for the use cases, reporting to ``progress``."""
    return lambda phase, message: progress(SetupEvent(phase, message))


def _create(
    name: str,
    wanted: str,
    *,
    version: str | None,
    backend: str | None,
    cpus: int | None,
    memory_mib: int | None,
    context: Context | None,
    insecure: bool,
    progress: SetupProgress,
    cancel: threading.Event | None,
    ctx: Workspace,
) -> list[str]:
    """Choose the backend, pull the appliance and create the contextualised project; the warnings."""
    _check_cancel(cancel, "before it started")
    chosen = choose_backend(backend, say=lambda text: progress(SetupEvent("backend", text)))
    found = find_appliance(wanted, version, insecure=insecure, ctx=ctx)
    warnings = list(found.problems)
    _check_cancel(cancel, "before the download")

    def on_pull(event: PullEvent) -> None:
        progress(SetupEvent(event.phase, event.message, event.done, event.total))

    pulled = pull_for_backend(found, chosen, insecure=insecure, progress=on_pull, cancel=cancel, ctx=ctx)
    _check_cancel(cancel, "before the project was created")
    warnings += create_setup_project(
        name, found, pulled.image.sha256, chosen, context or default_context(name),
        cpus=cpus, memory_mib=memory_mib, say=_reporter(progress), ctx=ctx,
    )  # fmt: skip
    return warnings


def _boot(name: str, progress: SetupProgress, cancel: threading.Event | None, ctx: Workspace) -> VMState:
    """Start the VM unless it runs already; the state it was found in."""
    before = vm_state_of(name, ctx=ctx)
    if before in (VMState.RUNNING, VMState.TRANSITIONING):
        progress(SetupEvent("boot", f"the VM is already {before.value}"))
        return before
    _check_cancel(cancel, "before the VM was started")
    progress(SetupEvent("boot", "resuming the VM" if before == VMState.SAVED else "booting the VM"))
    how = running.up(name, ctx=ctx)
    progress(SetupEvent("boot", f"the VM {how}"))
    if before == VMState.SAVED:
        problem = set_guest_clock(name, ctx=ctx)
        progress(SetupEvent("boot", problem or "the guest clock was set to the host's"))
    return before


def setup(
    appliance: str | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    backend: str | None = None,
    cpus: int | None = None,
    memory_mib: int | None = None,
    context: Context | None = None,
    insecure: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    progress: SetupProgress = no_events,
    cancel: threading.Event | None = None,
    ctx: Workspace | None = None,
) -> SetupResult:
    """Make project ``name`` (default: the appliance's name) a running, contextualised VM of ``appliance``.

    Raises ``Cancelled`` when ``cancel`` is set: before the project is contextualised the project
    is removed again (a partial download stays for the next run); after, the project stays whole
    and a new run carries on.
    """
    ctx = ctx or Workspace.default()
    wanted = appliance or DEFAULT_APPLIANCE
    name = setup_project_name(name, wanted)
    say = _reporter(progress)
    with setup_logbook_row(name, wanted, ctx=ctx) as op:
        created, warnings = False, []
        if not project_exists(name, ctx=ctx):
            try:
                warnings = _create(
                    name, wanted, version=version, backend=backend, cpus=cpus, memory_mib=memory_mib,
                    context=context, insecure=insecure, progress=progress, cancel=cancel, ctx=ctx,
                )  # fmt: skip
                created = True
            except AlreadyExists:  # another setup made it meanwhile: carry on with it
                warnings.append(f"project {name} was created by another process meanwhile")
        meta = complete_setup_project(name, say=say, ctx=ctx)
        if not created:
            warnings += overrides_ignored(name, meta, appliance=appliance, backend=backend, cpus=cpus,
                                          memory_mib=memory_mib, context=context, ctx=ctx)  # fmt: skip
        before = _boot(name, progress, cancel, ctx)
        try:
            ready_by = wait_until_ready(name, meta, timeout=ready_timeout, say=say, cancel=cancel, ctx=ctx)
        except Cancelled:
            raise Cancelled(
                f"stopped waiting for {name}; the project is set up and its VM keeps booting",
                fix=f"`vml setup --name {name}` waits again, `vml down {name}` stops it",
            ) from None
        except GuestNotReady as exc:  # never leave the VM running without saying so
            raise GuestNotReady(
                f"{exc.message}; the VM of {name} is still running",
                fix=f"{exc.fix}; `vml down {name}` stops it",
            ) from exc
        reach = reach_facts(name, meta, ctx=ctx)
        result = SetupResult(
            project=name, vm_name=reach.vm_name, backend=reach.backend, appliance=str(meta.get("appliance")),
            version=str(meta.get("version")), created=created, vm_before="absent" if created else before.value,
            ready_by=ready_by, hostname=reach.hostname, console_log=reach.console_log,
            agent_socket=reach.agent_socket, ssh=ssh_access(name, ctx=ctx) if meta.get("ssh_port") else None,
            warnings=warnings,
        )  # fmt: skip
        op.message = ("created and booted" if created else f"was {before.value}") + (
            f", ready ({ready_by})" if ready_by else ""
        )
        progress(SetupEvent("done", f"{name} is running" + (f" and answers ({ready_by})" if ready_by else "")))
        return result
