"""Shared output helpers: messages to stderr, results to stdout, JSON for listings.

Neither console reads markup or emoji codes: what is printed often carries user data (a state
called ``[/x]``, a note with ``:smile:`` in it) that must come out as typed. Colour is given as
data instead, with ``rich.text.Text`` (``Text.assemble(("ok", "green"), " ", name)``) or ``style=``.
Neither lets a control character through either: an ESC sequence in a signer's name could hide
text or forge a line, so every control character but the newline is printed as a visible escape
(``\x1b``); text that must stay on one line (a prompt) goes through :func:`one_line` first.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from vmlog.cli.plain import one_line as one_line
from vmlog.cli.plain import print_json as print_json
from vmlog.cli.plain import visible


class SafeConsole(Console):
    """A rich console whose output never carries a raw control character from the text it prints."""

    def render_str(self, text: str, **kwargs: Any) -> Text:  # strings are laid out as they will be shown
        return super().render_str(visible(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None):  # type: ignore[override]
        for segment in super().render(renderable, options):
            if segment.control is None and not segment.text.isprintable() and segment.text != "\n":
                segment = Segment(visible(segment.text), segment.style, None)
            yield segment


err = SafeConsole(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = SafeConsole(highlight=False, soft_wrap=True, markup=False, emoji=False)

Message = str | Text


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
