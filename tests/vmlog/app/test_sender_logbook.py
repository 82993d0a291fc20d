"""An imported state brings its sender's logbook excerpt: `vml state show`, `vml log` and the GUI's logbook show it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmlog.app import exchange, logbook, projects
from vmlog.app import states as app_states
from vmlog.cli.main import app
from vmlog.paths import home_under
from vmlog.workspace import Workspace


@pytest.fixture
def imported(vmlog_home: Path, tmp_path: Path) -> tuple[str, str]:
    """Alice saves s1 with a note and exports it; the default home (Bob's) imports it. (project, state id)"""
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * (4 << 20))
    alice = Workspace.of(home_under(tmp_path / "alice"))
    image = alice.images.add_file(base, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, ctx=alice)
    state = app_states.save_state("analysis", "s1", message="calibrated", ctx=alice)
    logbook.add_note("ready for review", project_name="analysis", ref="s1", ctx=alice)
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=alice)
    bob = Workspace.default()
    bob.images.add_file(base, name="testbase", version="1", format="raw")  # the base is there: nothing to fetch
    result = exchange.import_state(bundle.path, trust=True, ctx=bob)
    assert result.state_id == state.id
    return result.project, state.id


def vml(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_state_show_has_the_senders_logbook(imported: tuple[str, str]) -> None:
    project, state_id = imported
    details = app_states.show_state(project, state_id)
    notes = [r for r in details.sender_logbook if r.kind == "note"]
    assert [r.what for r in notes] == ["ready for review"] and "@" in notes[0].who and notes[0].when > 0
    assert any(r.what == "state save" for r in details.sender_logbook)

    shown = json.loads(vml("state", "show", state_id, "-p", project, "--json"))
    assert any(row.get("text") == "ready for review" for row in shown["sender_logbook"])
    assert shown["notes"] == []  # the sender's note is not a note written here
    text = vml("state", "show", state_id, "-p", project)
    assert "sender's logbook" in text and "ready for review" in text and notes[0].who in text


def test_vml_log_shows_the_senders_rows_marked(imported: tuple[str, str]) -> None:
    project, state_id = imported
    rows = json.loads(vml("log", project, "--json"))
    sent = [r for r in rows if r.get("from_sender")]
    assert {r["kind"] for r in sent} == {"operation", "note"}
    assert all(r["project"] == project and r["state"] == state_id for r in sent)
    assert any(r.get("text") == "ready for review" and r["sender_project"] == "analysis" for r in sent)
    assert any(r.get("action") == "state import" and not r.get("from_sender") for r in rows)  # Bob's own row
    text = vml("log", project)
    (line,) = [line for line in text.splitlines() if "ready for review" in line]
    assert "(sender's logbook)" in line and sent[0]["who"] in line
    assert not json.loads(vml("log", project, "--since", "2000-01-01", "--json")) == []


def test_gui_logbook_panel_shows_the_senders_rows(imported: tuple[str, str], qtbot) -> None:
    from ui.controllers.project_view import read_project
    from ui.logbook_panel import LogbookPanel

    project, _state_id = imported
    view = read_project(project, None)
    panel = LogbookPanel()
    qtbot.addWidget(panel)
    panel.set_history(view.history, {n.id: n.name or n.id[:8] for n in view.nodes})
    (row,) = [row for row in panel.visible_rows() if row[4] == "ready for review"]
    assert row[1].endswith("(sender's logbook)") and row[2] == "note s1"
