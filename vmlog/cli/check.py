"""``vml check``: reproduction checks of a project, run on states booted in throw-away clones."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from vmlog.app import checks as app_checks
from vmlog.cli.output import info, out, print_json

app = typer.Typer(
    help="Reproduction checks: commands run in the guest and what they must print, checked on saved states.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ProjectOption = Annotated[str | None, typer.Option("--project", "-p", help="Project (default: the current one).")]
STATUS_STYLE = {"passed": "green", "diverged": "red", "error": "yellow"}


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The check's name (unique in the project).")],
    command: Annotated[str, typer.Option("--command", "-c", help="Shell command run in the guest (sh -c).")],
    expect: Annotated[str | None, typer.Option("--expect", help="The exact text it must print.")] = None,
    match: Annotated[str | None, typer.Option("--match", help="A regular expression its output must match.")] = None,
    number: Annotated[float | None, typer.Option("--number", help="The number it must print.")] = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="How far the number may be off: 0.5 (absolute) or 1% (relative).")
    ] = None,
    number_pattern: Annotated[
        str | None,
        typer.Option("--number-pattern", help="Regex finding the number (group 1); default: the first number printed."),
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds the command may take.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a check of the same name.")] = False,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a check: a command run in the guest and the text, pattern or number it must print."""
    wanted = app_checks.expectation(
        expect=expect, match=match, number=number, tolerance=tolerance, number_pattern=number_pattern
    )
    added = app_checks.add_check(name, command, wanted, timeout=timeout, replace=replace, project=project)
    if json_output:
        print_json(added.to_dict())
        return
    info(f"check {added.name} added: {added.command!r} must give {added.expected}")


@app.command("list")
def list_(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """The project's checks, in the order they run."""
    listing = app_checks.list_checks(project)
    if json_output:
        print_json(listing.to_dict())
        return
    if not listing.checks:
        info(f"project {listing.project} has no checks; add one with `vml check add NAME --command CMD --expect TEXT`")
        return
    table = Table("NAME", "COMMAND", "EXPECTED", box=None, header_style="dim")
    for check in listing.checks:
        table.add_row(check.name, check.command, check.expected)
    out.print(table)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The check to remove (its past results stay in the logbook).")],
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove a check."""
    removed = app_checks.remove_check(name, project)
    if json_output:
        print_json(removed.to_dict())
        return
    info(f"check {removed.name} removed")


@app.command("run")
def run(
    states: Annotated[list[str] | None, typer.Argument(help="States to check (default: the current one).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Check every state of the project.")] = False,
    backend: Annotated[
        str | None, typer.Option("--backend", "-b", help="Backend the clones boot on (default: the project's).")
    ] = None,
    only: Annotated[list[str] | None, typer.Option("--check", help="Run only this check (repeatable).")] = None,
    boot_timeout: Annotated[float, typer.Option("--boot-timeout", help="Seconds to wait for a clone's agent.")] = 300,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Boot each state in a throw-away clone, run the checks, record every result; exit 3 if one diverged."""

    def step(message: str) -> None:
        if not json_output:
            info(message)

    result = app_checks.run_checks(
        list(states or []), project=project, every=every, backend=backend, only=list(only or []) or None,
        boot_timeout=boot_timeout, on_step=step,
    )
    if json_output:
        print_json(result.to_dict())
    else:
        table = Table("STATE", "CHECK", "RESULT", "EXPECTED", "OBSERVED", "DETAIL", box=None, header_style="dim")
        for item in result.results:
            table.add_row(
                item.state, item.check, Text(item.status, style=STATUS_STYLE.get(item.status, "")),
                item.expected, item.observed or "", item.detail,
            )
        out.print(table)
        info(f"{result.summary()} on {result.backend} in {result.seconds:.0f} s")
    if result.exit_code:
        raise typer.Exit(result.exit_code)
