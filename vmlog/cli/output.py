"""Shared output helpers: messages to stderr, results to stdout, JSON for listings.

Neither console reads markup or emoji codes: what is printed often carries user data (a state
called ``[/x]``, a note with ``:smile:`` in it) that must come out as typed. Colour is given as
data instead, with ``rich.text.Text`` (``Text.assemble(("ok", "green"), " ", name)``) or ``style=``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)

Message = str | Text


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def info(message: Message) -> None:
    err.print(message)


def warn(message: Message) -> None:
    err.print(Text.assemble(("warning:", "yellow"), " ", message))


def report_error(message: Message, fix: Message | None = None) -> None:
    """``error: message`` and, when there is one, ``  fix: ...`` on stderr."""
    err.print(Text.assemble(("error:", "red"), " ", message))
    if fix:
        err.print(Text.assemble("  ", ("fix:", "bold"), " ", fix))


def abort(message: Message, *, fix: Message | None = None, code: int = 1) -> NoReturn:
    report_error(message, fix)
    raise typer.Exit(code)
