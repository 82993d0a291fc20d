"""The list of ``vml``'s commands as data, and the answers to ``--version`` and ``--help`` that need no typer.

Importing typer costs more than the rest of start-up together, so the entry point answers those two
from here, with the same text click would print (a test compares them at several widths).
"""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Lazy:
    """A subcommand: its name, ``module:attribute`` (a typer app or a command function), its listed help.

    ``subcommands`` add lazily loaded commands to a group that lives in another module.
    """

    name: str
    target: str
    help: str
    subcommands: tuple[Lazy, ...] = ()  # loaded by vmlog.cli.lazy.load_command


# The options of `vml` itself, as click lists them.
ROOT_OPTIONS = (
    ("--version", "Print the version and exit."),
    ("--install-completion", "Install completion for the current shell."),
    ("--show-completion", "Show completion for the current shell, to copy it or customize the installation."),
    ("-h, --help", "Show this message and exit."),
)


def _width() -> int:
    """The width click's help formatter uses: the terminal's, at most 80, less 2, at least 50."""
    return max(min(shutil.get_terminal_size().columns, 80) - 2, 50)


def _fill(text: str, width: int, indent: str = "", first: str | None = None) -> list[str]:
    wrapper = textwrap.TextWrapper(
        width, initial_indent=indent if first is None else first, subsequent_indent=indent, replace_whitespace=False
    )
    return wrapper.wrap(" ".join(text.split())) or [indent]


def _definitions(rows: tuple[tuple[str, str], ...] | list[tuple[str, str]], width: int) -> list[str]:
    """A two-column list as click's ``write_dl`` writes it, in a section (indented by 2)."""
    first_col = min(max(len(term) for term, _ in rows), 30) + 2
    lines = []
    for term, text in rows:
        wrapped = _fill(text, max(width - first_col - 2, 10))
        if len(term) <= first_col - 2:
            lines.append(f"  {term}{' ' * (first_col - len(term))}{wrapped[0]}")
        else:
            lines.append(f"  {term}")
            lines.append(f"{' ' * (first_col + 2)}{wrapped[0]}")
        lines.extend(f"{' ' * (first_col + 2)}{line}" for line in wrapped[1:])
    return lines


def quick_help(prog: str, help_text: str, commands: tuple[Lazy, ...]) -> str:
    """``vml --help``: usage, the help, the options and every command with its listed help."""
    width = _width()
    lines = [f"Usage: {prog} [OPTIONS] COMMAND [ARGS]...", ""]
    lines += _fill(help_text, width, "  ")
    lines += ["", "Options:", *_definitions(ROOT_OPTIONS, width), "", "Commands:"]
    lines += _definitions([(entry.name, entry.help) for entry in commands], width)
    return "\n".join(lines) + "\n"
