"""``vml demo``: set up the test appliance from a local catalog, offline, and show its guest answering."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.cli.output import info, out, print_json
from vmlog.cli.setup import phase_display, print_reach, run_cancellable
from vmlog.demo import DEMO_PROJECT, NEXT_STEPS, run_demo


def demo(
    name: Annotated[str, typer.Option("--name", help="Project name for the demo VM.")] = DEMO_PROJECT,
    stop: Annotated[
        bool, typer.Option("--stop/--keep", help="Shut the VM down at the end (default: keep it running).")
    ] = False,
    build_cache: Annotated[
        Path | None, typer.Option("--build-cache", help="Where the test appliance is built and cached.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the guest.")] = 300.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Build the test appliance, serve it through a catalog on 127.0.0.1, `vml setup` it, ask the guest."""
    with phase_display() as display:
        result = run_cancellable(
            lambda cancel: run_demo(
                project=name,
                build_cache=build_cache,
                stop=stop,
                ready_timeout=timeout,
                say=lambda text: display.progress.console.print(f"  {text}", style="dim", highlight=False),
                progress=display,
                cancel=cancel,
            )
        )
    if json_output:
        print_json(result.to_dict())
        return
    print_reach(result.setup)
    out.print()
    out.print(Text.assemble(("The guest answers", "bold"), " (through vmlog's guest agent):"), highlight=False)
    width = max(len(label) for label, _, _ in result.answers)
    for label, command, answer in result.answers:
        out.print(Text.assemble(f"  {label:<{width}}  ", (f"$ {command}", "dim")), highlight=False)
        for line in answer.splitlines() or [""]:
            out.print(f"  {'':<{width}}  {line}", markup=False, highlight=False)
    out.print()
    if result.stopped:
        info(f"{name} is shut down; `vml up {name}` starts it again")
    out.print("Try next:", style="bold", highlight=False)
    width = max(len(cmd) for cmd, _ in NEXT_STEPS)
    for command, what in NEXT_STEPS:
        out.print(Text.assemble("  ", (f"{command:<{width}}", "cyan"), f"  {what}"), highlight=False)
    if not result.stopped:
        info(f"The VM keeps running; `vml down {name}` stops it.")
