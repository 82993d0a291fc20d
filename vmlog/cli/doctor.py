"""``vml doctor``: which backends are usable here and why not, with the fix for each."""

from __future__ import annotations

from typing import Annotated

import typer

from vmlog.app.doctor import diagnose
from vmlog.cli.output import out, print_json


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair the project store after a crash (saved states are kept).")
    ] = False,
) -> None:
    """Check the hypervisor backends, tools and project store, and say how to fix what is wrong.

    Exits 1 when no backend is usable or a check failed, so scripts can rely on it.
    """
    report = diagnose(repair=repair)
    healthy = report.best_backend() is not None and all(check.ok for check in report.tools)
    if json_output:
        print_json(report.to_dict())
        raise typer.Exit(0 if healthy else 1)
    out.print("[bold]Backends[/]")
    for probe in report.backends:
        mark = "[green]ok[/]" if probe.available else "[red]--[/]"
        out.print(f"  {mark} {probe.backend:<11} {probe.summary}")
        for key, value in probe.details.items():
            out.print(f"       {key}: {value}")
        for warning in probe.warnings:
            out.print(f"       [yellow]warning:[/] {warning}")
        if probe.fix and not probe.available:
            out.print(f"       fix: {probe.fix}")
    out.print("[bold]Tools[/]")
    for check in report.tools:
        mark = "[green]ok[/]" if check.ok else "[red]--[/]"
        out.print(f"  {mark} {check.name:<11} {check.summary}")
        for warning in check.warnings:
            out.print(f"       {warning}")
        if check.fix and not check.ok:
            out.print(f"       fix: {check.fix}")
    best = report.best_backend()
    out.print(f"Best backend here: [bold]{best}[/]" if best else "[red]No usable backend here.[/]")
    raise typer.Exit(0 if healthy else 1)
