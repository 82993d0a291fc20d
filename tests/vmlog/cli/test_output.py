"""User data is never markup: names and notes that look like rich markup or emoji codes print as typed."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from vmlog.cli import output
from vmlog.cli.main import app
from vmlog.cli.progress import status
from vmlog.errors import NotFound

# each of these broke, or silently changed, a line when the consoles read markup
LOOKS_LIKE_MARKUP = ["[/x]", "[bold]loud[/bold]", "[link=file:///etc]here[/link]", "[red]", ":smile:", "a [b] c"]


def terminal() -> Console:
    """A console that writes colour codes, configured as the output consoles are."""
    return Console(file=io.StringIO(), force_terminal=True, color_system="standard", markup=False, emoji=False)


@pytest.mark.parametrize("text", LOOKS_LIKE_MARKUP)
def test_the_helpers_print_user_data_verbatim(text: str) -> None:
    with output.err.capture() as err, output.out.capture() as out:
        output.info(f"saved state {text}")
        output.warn(text)
        output.report_error(f"no state called {text!r}", fix=f"rename {text}")
        output.out.print(text)
        with pytest.raises(typer.Exit) as exited:
            output.abort(text, fix=text, code=3)
        with status(f"Saving {text}") as progress:  # a spinner reads a plain string as markup
            progress(f"layer {text}", 0.5)
    assert err.get().splitlines() == [
        f"saved state {text}",
        f"warning: {text}",
        f"error: no state called {text!r}",
        f"  fix: rename {text}",
        f"error: {text}",
        f"  fix: {text}",
    ]
    assert out.get() == f"{text}\n" and exited.value.exit_code == 3


def test_the_prefixes_keep_their_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    console = terminal()
    monkeypatch.setattr(output, "err", console)
    output.report_error("[/x] is gone", fix="`vml state list`")
    output.warn("[bold]")
    written = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[31merror:\x1b[0m [/x] is gone" in written
    assert "\x1b[1mfix:\x1b[0m `vml state list`" in written
    assert "\x1b[33mwarning:\x1b[0m [bold]" in written


def vml(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point, as a user runs it (CliRunner would skip the error mapping of ``run``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def test_state_names_and_notes_that_look_like_markup_come_back_verbatim(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (4 << 20))
    made = CliRunner().invoke(app, ["project", "new", "demo", "--appliance", str(image), "--memory", "256"])
    assert made.exit_code == 0, made.output
    saved = vml("state", "save", "[/x]", "-m", "[bold]first[/bold] :smile:")
    assert saved.returncode == 0 and "saved state" in saved.stderr and "[/x]" in saved.stderr
    assert vml("state", "save", "[link=file:///etc]second[/link]").returncode == 0
    noted = vml("note", "[red]check[/] the [/x] logs")
    assert noted.returncode == 0

    listed = vml("state", "list").stdout
    assert "[/x]" in listed and "[bold]first[/bold] :smile:" in listed and "[link=file:///etc]second[/link]" in listed
    shown = vml("state", "show", "[/x]").stdout
    assert " [/x]" in shown and "message:  [bold]first[/bold] :smile:" in shown
    assert "[link=file:///etc]second[/link]" in vml("state", "tree").stdout
    assert "[link=file:///etc]second[/link]" in vml("status").stdout
    history = vml("log").stdout
    assert "[red]check[/] the [/x] logs" in history and "[bold]first[/bold] :smile:" in history

    missing = vml("state", "restore", "[/nope]")
    assert missing.returncode == NotFound.exit_code
    assert missing.stderr.startswith("error: no state called '[/nope]'\n  fix: ")
