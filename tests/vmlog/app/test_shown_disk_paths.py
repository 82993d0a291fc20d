"""`--json` of a project and of a state shows the disk files the VM really uses, not the spec template's."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vmlog.app import projects
from vmlog.app import states as app_states
from vmlog.cli.main import app
from vmlog.workspace import Workspace


def shown(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def system_disk(data: dict) -> Path:
    (disk,) = [d for d in data["spec"]["disks"] if d.get("label") == "system"]
    return Path(disk["path"])


def test_project_and_state_json_name_their_own_layers(vmlog_home: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * (4 << 20))
    ctx = Workspace.default()
    image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, ctx=ctx)
    first = app_states.save_state("analysis", "s1", ctx=ctx)
    second = app_states.save_state("analysis", "s2", ctx=ctx)
    files = ctx.projects.get("analysis")
    project = files.load()

    live = system_disk(shown("project", "show", "analysis"))
    assert live == files.layers.path(project.live["system"]) and live.is_file()
    frozen = system_disk(shown("state", "show", "s1", "--project", "analysis"))
    assert frozen == files.layers.path(first.layers["system"]) and frozen.is_file()
    later = system_disk(shown("state", "show", "s2", "--project", "analysis"))
    assert later == files.layers.path(second.layers["system"]) and later.is_file()
    assert len({live, frozen, later}) == 3 and ".new-" not in f"{live}{frozen}{later}"
