"""Shared output helpers: messages to stderr, results to stdout, JSON for listings."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def info(message: str) -> None:
    err.print(message)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {message}")


def abort(message: str, *, fix: str | None = None, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/] {message}")
    if fix:
        err.print(f"  [bold]fix:[/] {fix}")
    raise typer.Exit(code)
