"""``vml log`` and ``vml note``: read the logbook, annotate the current state."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import logbook
from vmlog.cli.output import info, out, print_json
from vmlog.errors import InvalidInput

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """``2h``, ``3d``, ``1w``, or an ISO date/time -> a timestamp."""
    match = _AGO.match(text.strip())
    if match:
        return time.time() - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise InvalidInput(
            f"cannot read --since {text!r}", fix="use e.g. 2h, 3d, 1w or 2024-05-01T10:00"
        ) from None


def log(
    project: Annotated[str | None, typer.Argument(help="Only this project (default: all).")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries after this: 2h, 3d, 1w or an ISO date.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The logbook: every action on every project, who did it, when, and how it ended; notes too."""
    rows = logbook.history(project, since=parse_since(since) if since else None)
    if json_output:
        print_json(rows)
        return
    colours = {"ok": "green", "failed": "red", "cancelled": "yellow", "interrupted": "red", "running": "cyan"}
    for row in rows:
        if row["kind"] == "note":
            state = f" {row['state'][:8]}" if row["state"] else ""
            out.print(
                Text.assemble(
                    f"{row['created']}  {row['project'] or '-':<14} note{state}: {row['text']}  ",
                    (str(row["who"]), "dim"),
                ),
                soft_wrap=True,
            )
            continue
        colour = colours.get(row["outcome"], "white")
        took = f" {row['duration']:.1f}s" if row["duration"] is not None else ""
        state = f" {row['state'][:8]}" if row["state"] else ""
        message = f"  {row['message']}" if row["message"] else ""
        out.print(
            Text.assemble(
                f"{row['started']}  {row['project'] or '-':<14} {row['action']:<14} ",
                (str(row["outcome"]), colour),
                f"{took}{state}{message}  ",
                (str(row["who"]), "dim"),
            ),
            highlight=False,
            soft_wrap=True,
        )


def note(
    text: Annotated[str, typer.Argument(help="The note.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: the current one).")
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", "-s", help="State (default: the current one).")
    ] = None,
) -> None:
    """Write a note in the logbook, attached to a state."""
    row = logbook.add_note(text, project_name=project, ref=state)
    where = f"state {row['state'][:12]}" if row["state"] else "the project (no state saved yet)"
    info(f"note added to {row['project']}, {where}")
