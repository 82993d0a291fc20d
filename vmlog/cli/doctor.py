"""``vml doctor``: which backends are usable here and why not, with the fix for each."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vmlog.app.doctor import diagnose
from vmlog.cli.output import out, print_json


def _mark(ok: bool) -> Text:
    return Text("ok", style="green") if ok else Text("--", style="red")


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
    out.print(Text("Backends", style="bold"))
    for probe in report.backends:
        out.print(Text.assemble("  ", _mark(probe.available), f" {probe.backend:<11} {probe.summary}"))
        for key, value in probe.details.items():
            out.print(Text(f"       {key}: {value}"))
        for warning in probe.warnings:
            out.print(Text.assemble("       ", ("warning:", "yellow"), f" {warning}"))
        if probe.fix and not probe.available:
            out.print(Text(f"       fix: {probe.fix}"))
    out.print(Text("Tools", style="bold"))
    for check in report.tools:
        out.print(Text.assemble("  ", _mark(check.ok), f" {check.name:<11} {check.summary}"))
        for warning in check.warnings:
            out.print(Text(f"       {warning}"))
        if check.fix and not check.ok:
            out.print(Text(f"       fix: {check.fix}"))
    best = report.best_backend()
    out.print(Text.assemble("Best backend here: ", (best, "bold")) if best else Text("No usable backend here.", "red"))
    raise typer.Exit(0 if healthy else 1)
