"""``vml setup`` and ``vml ssh``: one command to a running, contextualised appliance, and a way in."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich import filesize
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.text import Text

from vmlog.app.contexts import context_for_project
from vmlog.app.projects import resolve_project
from vmlog.app.setup_project import Context, setup_project_name
from vmlog.cli.context_options import ContextOption, SshKeyOption, UserOption, context_choice
from vmlog.cli.output import abort, err, info, out, print_json, warn
from vmlog.cli.progress import run_interruptible
from vmlog.setup import SetupEvent, SetupResult, ssh_access
from vmlog.setup import setup as run_setup
from vmlog.setup.service import DEFAULT_APPLIANCE

T = TypeVar("T")


class _TransferColumn(ProgressColumn):
    """Bytes, rate and time left while downloading; nothing in the other phases."""

    def render(self, task: Task) -> Text:
        if not task.fields.get("transfer"):
            return Text("")
        done = filesize.decimal(int(task.completed))
        total = filesize.decimal(int(task.total)) if task.total else "?"
        speed = task.finished_speed or task.speed
        rate = f"{filesize.decimal(int(speed))}/s" if speed else "-"
        left = task.time_remaining
        eta = f"{int(left) // 60}:{int(left) % 60:02d} left" if left is not None else ""
        return Text(f"{done}/{total} {rate} {eta}".rstrip(), style="progress.download")


class PhaseDisplay:
    """Draws setup's phases: one line per finished phase, a live line (with a bar) for the current one."""

    def __init__(self) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[phase]:<14}", style="bold", markup=False),
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=30),
            _TransferColumn(),
            console=err,
            transient=True,
        )
        self.task = self.progress.add_task("", phase="", total=None, transfer=False)
        self.phase: str | None = None
        self.last = ""

    def _finish_phase(self) -> None:
        if self.phase is not None:
            self.progress.console.print(
                Text.assemble(("✓", "green"), " ", (f"{self.phase:<14}", "bold"), self.last), highlight=False
            )

    def __call__(self, event: SetupEvent) -> None:
        if event.phase != self.phase:
            self._finish_phase()
            self.phase = event.phase
            self.progress.reset(self.task, total=None, completed=0, phase=event.phase, transfer=False)
        self.last = event.message
        if event.done is not None:
            self.last = f"{event.message} ({filesize.decimal(event.total or event.done)})"
            self.progress.update(
                self.task, description=event.message, completed=event.done, total=event.total, transfer=True
            )
        else:
            self.progress.update(self.task, description=event.message)

    def __enter__(self) -> PhaseDisplay:
        self.progress.start()
        return self

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        if exc_type is None and self.phase == "done":
            self.phase = None  # "done" is said by the summary
        self.progress.stop()


def run_cancellable(job: Callable[[threading.Event], T]) -> T:
    """Run ``job(cancel)`` in a worker thread; the first Ctrl-C asks it to stop and waits until it has.

    The service then cleans up (a half-created project is removed, a partial download kept), which
    a KeyboardInterrupt landing in the middle of it could not guarantee. A second Ctrl-C gives up.
    """
    return run_interruptible(
        job,
        grace=None,
        on_interrupt=lambda: err.print(
            Text.assemble(("cancelling", "yellow"), " (finishing cleanly; Ctrl-C again to give up)")
        ),
    )


@contextmanager
def phase_display() -> Iterator[PhaseDisplay]:
    with PhaseDisplay() as display:
        yield display


def print_reach(result: SetupResult) -> None:
    """How to reach the VM: the result on stdout, warnings on stderr."""
    for text in result.warnings:
        warn(text)
    if result.created:
        how = "created and booted"
    elif result.already_running:
        how = "already running"
    else:
        how = "started" if result.vm_before == "stopped" else f"was {result.vm_before}, now running"
    ready = f"; the guest answers ({result.ready_by})" if result.ready_by else ""
    out.print(
        Text.assemble(
            (result.project, "bold"), f": {result.appliance} {result.version} on {result.backend}, {how}{ready}"
        ),
        highlight=False,
    )
    if result.hostname:
        out.print(f"  hostname {result.hostname}", highlight=False)
    if result.ssh is not None and not result.ssh.reachable:
        out.print(f"  SSH forwarded from 127.0.0.1:{result.ssh.port}, not answering yet", highlight=False)
    width = max(len(cmd) for cmd, _ in result.next_steps())
    for command, what in result.next_steps():
        out.print(Text.assemble("  ", (f"{command:<{width}}", "cyan"), f"  {what}"), highlight=False)


def setup(
    appliance: Annotated[str | None, typer.Argument(help="Appliance to set up (default: cernvm).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Project name (default: appliance's).")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Appliance version.")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="kvm, virtualbox or vmware.")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", min=1, help="Virtual CPUs.")] = None,
    memory: Annotated[int | None, typer.Option("--memory", min=32, help="Memory in MiB.")] = None,
    context: ContextOption = None,
    user: UserOption = None,
    ssh_key: SshKeyOption = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the guest.")] = 900.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """From nothing to a running, contextualised VM: backend, download, verify, project, seed, boot.

    Safe to run again: an existing project is started if stopped, and reported if it runs.
    """
    ctx_obj = _context_for(appliance, name, context, user, ssh_key)
    with phase_display() as display:
        result = run_cancellable(
            lambda cancel: run_setup(
                appliance,
                name=name,
                version=version,
                backend=backend,
                cpus=cpus,
                memory_mib=memory,
                context=ctx_obj,
                insecure=insecure,
                ready_timeout=timeout,
                progress=display,
                cancel=cancel,
            )
        )
    if json_output:
        print_json(result.to_dict())
        return
    print_reach(result)


def _context_for(
    appliance: str | None, name: str | None, context: str | None, user: str | None, ssh_key: Path | None
) -> Context | None:
    """The context ``--context``/``--user``/``--ssh-key`` ask for, filled for the project setup makes; None if none."""
    if context is None and user is None and ssh_key is None:
        return None
    project = setup_project_name(name, appliance or DEFAULT_APPLIANCE)
    template, context_file = context_choice(context)
    filled = context_for_project(project, template=template, context_file=context_file, user=user, ssh_key_file=ssh_key)
    return filled.context


def ssh(
    project: Annotated[str | None, typer.Argument(help="Project (default: the current one).")] = None,
    command: Annotated[list[str] | None, typer.Argument(help="A command to run instead of a shell.")] = None,
    project_option: Annotated[
        str | None, typer.Option("--project", "-p", help="Project, as an option (same as PROJECT).")
    ] = None,
) -> None:
    """Log in to the project's VM over its forwarded SSH port (ssh -p PORT user@127.0.0.1)."""
    if project_option is not None:  # `vml ssh -p P ls`: the positional words are the command
        command = [word for word in (project, *(command or [])) if word is not None]
        project = project_option
    access = ssh_access(project)
    if not access.reachable:
        abort(
            f"nothing answers SSH on 127.0.0.1:{access.port}" + (" of the project's host" if access.proxy else "")
            + " (is the VM running and does it run sshd?)",
            fix="`vml status` for the VM, `vml console` for what the guest says",
        )
    if shutil.which("ssh") is None:
        abort("the ssh command is not installed", fix="apt-get install openssh-client")
    argv = access.command(resolve_project(project)) + list(command or [])
    info(" ".join(argv))
    os.execvp(argv[0], argv)
