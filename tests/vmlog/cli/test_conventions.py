"""Command-line conventions: listings with headers, -n and -p, `project rm` without a terminal, --json everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from vmlog.cli.main import app
from vmlog.errors import NotFound

ROOT = Path(__file__).resolve().parents[3]


def vml(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


def vml_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "vmlog.cli", *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip


def test_listings_have_headers_and_do_not_wrap(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    vml("project", "new", "a-project-with-a-rather-long-name", "--appliance", str(image), "--memory", "256")
    vml("state", "save", "first", "-m", "a message long enough to go past the eightieth column of any terminal")
    listed = vml_process("project", "list")
    header, row = listed.stdout.splitlines()
    assert header.split() == ["PROJECT", "VM", "STATES", "DISK", "BACKEND", "BASE"]
    assert row.startswith("* a-project-with-a-rather-long-name")
    states = vml_process("state", "list").stdout.splitlines()
    assert states[0].split()[:3] == ["ID", "CREATED", "NAME"] and len(states) == 2
    assert states[1].endswith("eightieth column of any terminal") and len(states[1]) > 80


def test_log_takes_n_and_p(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    vml("project", "new", "p1", "--appliance", str(image), "--memory", "256")
    for name in ("one", "two", "three"):
        vml("state", "save", name)
    rows = json.loads(vml("log", "-n", "2", "-p", "p1", "--json"))
    assert [row["action"] for row in rows] == ["state save", "state save"] and len(rows) == 2
    assert len(vml("log", "--no-pager", "-n", "1").splitlines()) == 1
    assert json.loads(vml("status", "-p", "p1", "--json"))["project"] == "p1"


def test_project_rm_without_a_terminal(vmlog_home: Path, tmp_path: Path) -> None:
    missing = vml_process("project", "rm", "nope")
    assert missing.returncode == NotFound.exit_code and "no project called 'nope'" in missing.stderr
    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (1 << 20))
    vml("project", "new", "keep", "--appliance", str(image), "--memory", "256")
    asked = vml_process("project", "rm", "keep")
    assert asked.returncode == 2 and "--yes" in asked.stderr and "aborted" not in asked.stderr
    assert [row["name"] for row in json.loads(vml("project", "list", "--json"))] == ["keep"]
    assert vml_process("project", "rm", "keep", "--yes").returncode == 0


def test_setup_dash_v_is_not_a_version(vmlog_home: Path) -> None:
    proc = vml_process("setup", "-v", "1")
    assert proc.returncode == 2 and "No such option: -v" in proc.stderr


def test_appliance_verify_speaks_json(vmlog_home: Path) -> None:
    proc = vml_process("appliance", "verify", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_an_unreachable_catalog_is_reported_as_unreachable(vmlog_home: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"vmlog_catalog": 1, "appliances": []}))
    vml("catalog", "add", str(catalog), "--name", "lab")
    catalog.unlink()  # the catalog's server (here: its file) is gone after it was added
    found = vml_process("appliance", "info", "analysis-vm")
    assert found.returncode == NotFound.exit_code
    assert "no appliance named 'analysis-vm'" in found.stderr and "could not be read" in found.stderr
    assert "catalog lab" in found.stderr and "http_proxy" in found.stderr
