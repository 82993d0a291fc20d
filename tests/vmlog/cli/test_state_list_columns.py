"""`vml state list` prints each cell under its header: the parent under PARENT, the message under MESSAGE."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vmlog.cli.main import app


def vml(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_parent_and_message_sit_under_their_headers(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    vml("project", "new", "cols", "--appliance", str(image), "--memory", "256")
    vml("state", "save", "first", "-m", "the first note")
    vml("state", "save", "second", "-m", "the second note")
    header, first, second = vml("state", "list").splitlines()
    parent_at, message_at = header.index("PARENT"), header.index("MESSAGE")
    assert first[parent_at:message_at].strip() == "-" and first[message_at:] == "the first note"
    assert first[:2].strip() == "" and second.startswith("@ ")
    parent = second[parent_at:message_at].strip()
    assert first[2:14].startswith(parent) and second[message_at:] == "the second note"
