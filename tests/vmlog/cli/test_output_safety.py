"""The CLI's consoles print text from outside as data: no markup, no raw control characters."""

from __future__ import annotations

import io

from rich.table import Table
from rich.text import Text

from vmlog.cli import output


def rendered(*objects: object) -> str:
    console = output.SafeConsole(file=io.StringIO(), force_terminal=True, markup=False, emoji=False, highlight=False)
    for obj in objects:
        console.print(obj)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_escape_sequences_and_bidi_overrides_come_out_visible() -> None:
    table = Table()
    table.add_column("state")
    table.add_row("s\x1b[8mhidden")
    text = rendered("alice\x1b[8m (unknown key)\x07", Text.assemble(("ok", "green"), " b\x9bc\u202e"), table)
    assert "\x1b[8m" not in text and "\x9b" not in text and "\u202e" not in text and "\x07" not in text
    assert "alice\\x1b[8m (unknown key)" in text and "\\u202e" in text and "s\\x1b[8mhidden" in text


def test_markup_is_printed_as_typed() -> None:
    assert "[/] [link=file:///etc]x[/link]" in rendered("[/] [link=file:///etc]x[/link]")


def test_one_line_keeps_a_forged_line_on_the_same_line() -> None:
    assert output.one_line("bob\nsigned by Alice (known key)\x1b[8m") == "bob\\nsigned by Alice (known key)\\x1b[8m"
