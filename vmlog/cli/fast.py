"""``vml project list``, ``vml state list`` and ``vml state tree`` answered without typer: the reads typed most.

Parsing a command line with typer means importing typer (and click, and its adapters), then the
command's module with every use case it offers; for a listing that is most of the time it takes.
:func:`answer` recognises these read-only commands in their plain forms (``--json``, ``-p NAME``,
``--project NAME``) and prints exactly what the full commands print (tests/vmlog/cli/test_fast.py
compares both); any other word on the command line (``--help``, ``--remote``, a typo) leaves the command
to the full CLI, which gives its usual help and usage errors.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vmlog.cli.plain import print_json, visible

if TYPE_CHECKING:
    from rich.console import Console

    from vmlog.app.listings import ProjectSummary
    from vmlog.app.types import State

__all__ = ["Parts", "answer", "parse", "print_lines", "styled"]

def styled() -> bool:
    """Whether rich would treat stdout as a terminal (then it styles, and rich itself prints)."""
    return "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ or sys.stdout.isatty()


Parts = list[tuple[str, str | None]]  # a line as pieces of text, each with its rich style (None: plain)


def print_lines(lines: list[tuple[str, Parts]], *, console: Console | None = None) -> None:
    """Each line as (plain text, styled parts); styled through rich only on a terminal, as the full command does.

    All lines go to rich in one print: line by line, 3,000 lines take 0.4 s. ``console`` is the rich
    console to print on (one capturing for a pager, say); without it, a pipe gets the plain text.
    """
    if console is None and not styled():
        sys.stdout.write("".join(visible(plain) + "\n" for plain, _parts in lines))
        return
    from rich.console import Console
    from rich.text import Text

    if console is None:
        console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
    if lines:
        styled_lines = (Text.assemble(*((visible(part), style or "") for part, style in parts)) for _, parts in lines)
        console.print(Text("\n").join(styled_lines), soft_wrap=True)


def _info(message: str) -> None:
    sys.stderr.write(visible(message) + "\n")


def size_text(num: int | None) -> str:
    """A byte count as listings show it (``-`` for unknown)."""
    if num is None:
        return "-"
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(num)


def project_list(as_json: bool) -> bool:
    """``vml project list [--json]``."""
    from vmlog.app.listings import list_projects

    rows = list_projects()
    if as_json:
        print_json([row.to_dict() for row in rows])
        return True
    if not rows:
        _info("no projects yet; create one with `vml project new NAME IMAGE`")
        return True
    width = project_list_width(rows)
    header = project_list_header(width)
    lines = [(header, [(header, "dim")])]
    for row in rows:
        mark, name, rest = project_row(row, width)
        lines.append((f"{mark}{name}{rest}", [(mark, None), (name, "bold"), (rest, None)]))
    print_lines(lines)
    return True


def when(ts: float) -> str:
    """A time as every listing shows it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def project_list_width(rows: list[ProjectSummary]) -> int:
    """The width of ``vml project list``'s name column."""
    return max(20, *(len(row.name) for row in rows))


def project_list_header(width: int) -> str:
    return f"  {'PROJECT':<{width}} {'VM':<12} {'STATES':>6} {'DISK':>10}  {'BACKEND':<8} BASE"


def project_row(row: ProjectSummary, width: int) -> tuple[str, str, str]:
    """One row of ``vml project list`` (quick path and full command alike): the mark, the name (bold), the rest."""
    base = f"{row.base.get('name')}:{row.base.get('version')}" + (f" on {row.uri}" if row.uri else "")
    disk = "on host" if row.disk_bytes is None else size_text(row.disk_bytes)  # a remote project's layers
    rest = f" {str(row.vm):<12} {row.states:>6} {disk:>10}  {row.backend:<8} {base}"
    return ("*" if row.current else " ") + " ", f"{row.name:<{width}}", rest


STATE_LIST_HEADER = f"  {'ID':<12}  {'CREATED':<19}  {'NAME':<20} {'PARENT':<15}  MESSAGE"


def state_row(s: State, current: str | None) -> str:
    """One row of ``vml state list`` (quick path and full command alike): the parent sits under PARENT."""
    mark = "@" if s.id == current else " "
    parent = (s.parent[:8] if s.parent else "-") + (" [memory]" if s.memory else "")
    return f"{mark} {s.id[:12]}  {when(s.created)}  {s.name or '':<20} {parent:<15}  {s.message}"


def state_list(project: str | None, as_json: bool) -> bool:
    """``vml state list [-p PROJECT] [--json]``."""
    from vmlog.app.listings import project_states

    proj, states = project_states(project)
    ordered = sorted(states.values(), key=lambda s: (s.created, s.id))
    if as_json:
        print_json([{**s.to_dict(), "current": s.id == proj.current} for s in ordered])
        return True
    if not ordered:
        _info(f"project {proj.name} has no states yet; save one with `vml state save NAME`")
        return True
    lines = [(STATE_LIST_HEADER, [(STATE_LIST_HEADER, "dim")])]
    for s in ordered:
        text = state_row(s, proj.current)
        lines.append((text, [(text, None)]))
    print_lines(lines)
    return True


def state_tree(project: str | None, as_json: bool) -> bool:
    """``vml state tree [-p PROJECT] [--json]``; False where the full command must draw it (a native tree)."""
    from vmlog.app import listings

    if as_json:
        proj, states = listings.project_states(project)
        print_json({"current": proj.current, "states": [s.to_dict() for s in states.values()]})
        return True
    lines = listings.state_tree(project)
    if lines is None:
        return False
    print_lines([(line, [(line, None)]) for line in lines])
    return True


def _options(words: list[str], with_project: bool) -> dict[str, Any] | None:
    """``--json`` and (if allowed) one ``-p``/``--project`` value; None for anything else, or anything twice."""
    found: dict[str, Any] = {"as_json": False}
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if word == "--json" and not found["as_json"]:
            found["as_json"] = True
        elif with_project and "project" not in found and word in ("-p", "--project") and rest:
            value = rest.pop(0)
            if not value or value.startswith("-"):
                return None
            found["project"] = value
        elif with_project and "project" not in found and word.startswith("--project=") and len(word) > 10:
            found["project"] = word[10:]
        else:
            return None
    return found


def parse(argv: list[str]) -> Callable[[], bool] | None:
    """The listing ``argv`` asks for, ready to run (False: not answered); None when the full CLI must read it."""
    if argv[:2] == ["project", "list"]:
        options = _options(argv[2:], with_project=False)
        return None if options is None else (lambda: project_list(options["as_json"]))
    commands = {"list": state_list, "tree": state_tree}
    if len(argv) >= 2 and argv[0] == "state" and argv[1] in commands:
        options, command = _options(argv[2:], with_project=True), commands[argv[1]]
        return None if options is None else (lambda: command(options.get("project"), options["as_json"]))
    return None


class Abort(Exception):  # noqa: N818 - named as click's, which the error report recognises by name
    """Ctrl-C during a quick listing, reported as click reports it for the full CLI (``aborted``, exit 130)."""


def answer(argv: list[str]) -> int | None:
    """Run ``argv`` if it is one of the quick listings: its exit code (errors reported as the full CLI does)."""
    command = parse(argv)
    if command is None:
        return None
    try:
        if not command():
            return None
    except SystemExit:
        raise
    except BaseException as exc:
        failure: BaseException = exc
        if isinstance(exc, KeyboardInterrupt):
            sys.stderr.write("\n")  # as click does before it raises its Abort
            failure = Abort()
        elif os.environ.get("VMLOG_DEBUG") and isinstance(exc, Exception):
            raise
        from vmlog.cli.errors_out import report_failure

        return report_failure(failure, as_json="--json" in argv)
    sys.stdout.flush()
    return 0
