"""``vml doctor``: which backends are usable here and why not, with the fix for each."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vmlog.app.doctor import Check, diagnose, diagnose_remote
from vmlog.cli.output import out, print_json


def _mark(ok: bool) -> Text:
    return Text("ok", style="green") if ok else Text("--", style="red")


def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Repair the project store after a crash (saved states are kept).")
    ] = False,
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="Check a (remote) libvirt host instead, e.g. qemu+ssh://USER@HOST/system."),
    ] = None,
) -> None:
    """Check the hypervisor backends, tools and project store, and say how to fix what is wrong.

    With --uri, check a libvirt host vmlog would use: the connection, its versions, KVM, and this home's
    storage pool there with its free space. Exits 1 when no backend is usable or a check failed.
    """
    if uri is not None:
        _doctor_remote(uri, json_output)
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
        _print_fix(check)
    best = report.best_backend()
    out.print(Text.assemble("Best backend here: ", (best, "bold")) if best else Text("No usable backend here.", "red"))
    raise typer.Exit(0 if healthy else 1)


def _print_fix(check: Check) -> None:
    if check.fix and not check.ok:
        out.print(Text(f"       fix: {check.fix}"))


def _doctor_remote(uri: str, json_output: bool) -> None:
    report = diagnose_remote(uri)
    if json_output:
        print_json(report.to_dict())
        raise typer.Exit(0 if report.ok else 1)
    out.print(Text.assemble(("Host ", "bold"), uri))
    for check in report.checks:
        out.print(Text.assemble("  ", _mark(check.ok), f" {check.name:<11} {check.summary}"))
        for key, value in check.details.items():
            out.print(Text(f"       {key}: {value}"))
        for warning in check.warnings:
            out.print(Text.assemble("       ", ("warning:", "yellow"), f" {warning}"))
        _print_fix(check)
    raise typer.Exit(0 if report.ok else 1)
