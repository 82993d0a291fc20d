"""`vml project`, `vml state`, `vml log` and `vml note` end to end on a stopped project (no VM boot)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vmlog.cli.main import app


def vml(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_project_and_state_commands(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (4 << 20))
    vml("project", "new", "demo", "--appliance", str(image), "--memory", "256")
    (row,) = json.loads(vml("project", "list", "--json"))
    assert row["name"] == "demo" and row["current"] and row["states"] == 0

    vml("state", "save", "-m", "clean install", "--name", "first")
    vml("state", "save", "second")
    vml("state", "restore", "first")
    vml("state", "save", "branch")
    states = json.loads(vml("state", "list", "--json"))
    assert [s["name"] for s in states] == ["first", "second", "branch"]
    assert [s["current"] for s in states] == [False, False, True]
    tree = vml("state", "tree")
    assert "|/" in tree and "@" in tree and "branch" in tree

    shown = json.loads(vml("state", "show", "HEAD~1", "--json"))
    assert shown["name"] == "first" and len(shown["children"]) == 2

    vml("state", "rename", "second", "abandoned")
    vml("state", "rm", "abandoned")
    assert [s["name"] for s in json.loads(vml("state", "list", "--json"))] == ["first", "branch"]

    vml("note", "looks right")
    history = json.loads(vml("log", "demo", "--json"))
    actions = [h["action"] for h in history if h["kind"] == "operation"]
    assert actions == [
        "project new",
        "state save",
        "state save",
        "state restore",
        "state save",
        "state rename",
        "state rm",
    ]
    assert history[-1]["kind"] == "note" and history[-1]["text"] == "looks right"
    assert json.loads(vml("log", "--since", "1h", "--json"))


def test_the_appliance_is_named_once(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    for args in ([], [str(image), "--appliance", str(image)]):
        result = CliRunner().invoke(app, ["project", "new", "demo", *args])
        assert result.exit_code == 2 and "--appliance" in result.output
    result = CliRunner().invoke(app, ["project", "new", "demo", "--appliance", "no-such-appliance"])
    assert result.exit_code != 0

