"""``vml check``: add, list, rm, and run's table, JSON and exit status (the run itself is faked here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmlog.app import checks as app_checks
from vmlog.app import projects
from vmlog.app.check_run import CheckRun
from vmlog.app.checks import CheckResult
from vmlog.cli.check import app
from vmlog.workspace import Workspace

runner = CliRunner()


@pytest.fixture
def project(vmlog_home: Path, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project("ana", str(base), ctx=Workspace.default())
    return "ana"


def _result(status: str, observed: str) -> CheckResult:
    return CheckResult("mtop", "a" * 32, "aaaaaaaa nominal", status, "172.4 ± 0.5", observed, "detail", 0.1)


def test_add_list_rm(project: str) -> None:
    added = runner.invoke(app, ["add", "mtop", "--command", "cat /data/mtop", "--number", "172.4", "--tolerance", "1%"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["add", "ev", "-c", "true", "--match", "x", "--tolerance", "1"]).exit_code != 0
    listing = runner.invoke(app, ["list", "--json"])
    assert json.loads(listing.stdout)["checks"][0]["expect"] == {
        "kind": "number", "value": 172.4, "tolerance": 0.01, "relative": True, "pattern": None
    }
    assert "172.4 ± 1%" in runner.invoke(app, ["list"]).stdout
    assert runner.invoke(app, ["rm", "mtop"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout)["checks"] == []


@pytest.mark.parametrize(
    ("statuses", "code"), [(["passed"], 0), (["passed", "diverged"], 3), (["passed", "error"], 4)]
)
def test_run_exit_status(project: str, monkeypatch: pytest.MonkeyPatch, statuses: list[str], code: int) -> None:
    def fake_run(states: list[str], **_options: object) -> CheckRun:
        return CheckRun("ana", "kvm", [_result(s, "172.4") for s in statuses], 1.0)

    monkeypatch.setattr(app_checks, "run_checks", fake_run)
    table = runner.invoke(app, ["run", "nominal"])
    assert table.exit_code == code
    assert "mtop" in table.stdout and statuses[-1] in table.stdout
    as_json = runner.invoke(app, ["run", "nominal", "--json"])
    assert as_json.exit_code == code
    data = json.loads(as_json.stdout)
    assert data["exit_code"] == code and [r["status"] for r in data["results"]] == statuses
