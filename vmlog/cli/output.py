"""Shared output helpers: messages to stderr, results to stdout, JSON for listings.

Neither console reads markup or emoji codes: what is printed often carries user data (a state
called ``[/x]``, a note with ``:smile:`` in it) that must come out as typed. Colour is given as
data instead, with ``rich.text.Text`` (``Text.assemble(("ok", "green"), " ", name)``) or ``style=``.
Neither lets a control character through either: an ESC sequence in a signer's name could hide
text or forge a line, so every control character but the newline is printed as a visible escape
(``\x1b``); text that must stay on one line (a prompt) goes through :func:`one_line` first.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c != 0x0A}
_CONTROLS.update({c: f"\\u{c:04x}" for c in _BIDI})
_ONE_LINE = {**_CONTROLS, 0x0A: "\\n"}


def visible(text: str) -> str:
    """``text`` with every control character but the newline (and bidi overrides) as a visible escape."""
    return text.translate(_CONTROLS)


def one_line(text: str) -> str:
    """``text`` on one line: newlines too become visible escapes (for prompts and one-line reports)."""
    return text.translate(_ONE_LINE)


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
