"""``vml up|down|status|console|switch``: run, stop and switch between projects' VMs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import projects, running
from vmlog.app.types import VMState
from vmlog.cli.output import abort, info, out, print_json
from vmlog.cli.progress import status as progress_status

ProjectArg = Annotated[str | None, typer.Argument(help="Project (default: the current one).")]
ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Project, as an option (same as PROJECT).")
]


def _one(positional: str | None, option: str | None) -> str | None:
    """The project named as an argument or with -p/--project (the same name twice is fine, two names are not)."""
    if positional and option and positional != option:
        abort(f"two projects given ({positional!r} and --project {option!r}); give one", code=2)
    return positional or option


def up(project: ProjectArg = None, project_option: ProjectOption = None) -> None:
    """Start the project's VM, or resume it where it was suspended."""
    project = _one(project, project_option)
    with progress_status("Starting") as progress:
        what = running.up(project, progress=progress)
    info(f"{projects.resolve_project(project)}: {what}")


def down(
    project: ProjectArg = None,
    save: Annotated[bool, typer.Option("--save", help="Suspend with memory; `vml up` resumes it.")] = False,
    poweroff: Annotated[
        bool, typer.Option("--poweroff", help="Pull the plug (unsaved guest data is lost).")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an ACPI shutdown.")] = 60.0,
    project_option: ProjectOption = None,
) -> None:
    """Stop the VM: ACPI shutdown by default."""
    project = _one(project, project_option)
    if save and poweroff:
        abort("--save and --poweroff exclude each other", code=2)
    mode = "save" if save else ("poweroff" if poweroff else "shutdown")
    with progress_status("Stopping") as progress:
        running.down(project, mode=mode, timeout=timeout, progress=progress)
    info(f"{projects.resolve_project(project)}: {'suspended' if save else 'stopped'}")


def status(
    project: ProjectArg = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project_option: ProjectOption = None,
) -> None:
    """The VM state, the current saved state and whether there is unsaved work."""
    project = _one(project, project_option)
    now = running.status(project)
    if json_output:
        print_json(now.to_dict())
        return
    head = f"{now.state[:12]} {now.state_name or ''}".strip() if now.state else "(no state saved)"
    line = Text.assemble((now.project, "bold"), f": VM {now.vm}, on state {head}")
    if now.unsaved_changes:
        line.append(", ").append("unsaved changes", style="yellow")
    out.print(line)
    if now.busy:
        out.print(f"  busy: {now.busy}", markup=False)


def console(
    project: ProjectArg = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines of the log tail.")] = 40,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new console output.")] = False,
    attach: Annotated[
        bool | None,
        typer.Option(
            "--attach/--log",
            help="Attach this terminal to the console (default when run in a terminal), or print its log.",
        ),
    ] = None,
    project_option: ProjectOption = None,
) -> None:
    """The guest's serial console: attach to it, or show the tail of its log (--follow keeps reading)."""
    project = _one(project, project_option)
    if attach is None:
        attach = sys.stdin.isatty() and sys.stdout.isatty() and not follow
    if attach:
        command = running.console_command(project)
        info("attaching to the console; detach with Ctrl-]")
        os.execvp(command[0], command)
    text = running.console_tail(project, lines=lines)
    out.print(text, markup=False, highlight=False)
    if not follow:
        return
    log = Path(running.status(project).serial_log or "")
    with log.open("rb") as fh:
        fh.seek(0, 2)
        try:
            while True:
                chunk = fh.read(65536)
                if chunk:
                    out.file.write(chunk.decode("utf-8", "replace"))
                    out.file.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            return


def switch(
    project: Annotated[str, typer.Argument(help="The project to switch to.")],
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Suspend every running project's VM (with memory) and resume or start PROJECT's."""
    with progress_status(f"Switching to {project}") as progress:
        result = running.switch(project, progress=progress)
    if json_output:
        print_json(result.to_dict())
        return
    left = f"{', '.join(result.left)} suspended, " if result.left else ""
    how = "resumed" if result.target_was == VMState.SAVED else "started"
    info(f"{left}{project} {how}")
