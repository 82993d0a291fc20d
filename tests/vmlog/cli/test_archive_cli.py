"""`vml project archive [-o FILE] [--verify FILE]` and `vml project unarchive FILE [--name] [--json]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "archive"))
from archive_fixtures import three_state_project  # noqa: E402

from vmlog.cli.archive import archive, unarchive  # noqa: E402


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("archive")(archive)
    app.command("unarchive")(unarchive)
    return app


def test_archive_verify_and_unarchive_from_the_command_line(vmlog_home: Path, tmp_path: Path) -> None:
    three_state_project(vmlog_home, tmp_path)
    out = tmp_path / "frozen.vmlarchive"
    runner = CliRunner()
    made = runner.invoke(_app(), ["archive", "analysis", "-o", str(out), "--json"], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    result = json.loads(made.stdout)
    assert result["states"] == 3 and Path(result["path"]) == out

    checked = runner.invoke(_app(), ["archive", "--verify", str(out)], catch_exceptions=False)
    assert checked.exit_code == 0 and "intact" in checked.stdout and "3 states" in checked.stdout

    back = runner.invoke(_app(), ["unarchive", str(out), "--name", "again", "--json"], catch_exceptions=False)
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout)["project"] == "again"


def test_verify_takes_no_project(vmlog_home: Path, tmp_path: Path) -> None:
    (tmp_path / "x.vmlarchive").write_bytes(b"")
    done = CliRunner().invoke(_app(), ["archive", "p", "--verify", str(tmp_path / "x.vmlarchive")])
    assert done.exit_code != 0
