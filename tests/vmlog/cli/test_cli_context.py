"""`vml context ...` as a user types it: list --json, new --from, edit through $EDITOR (checked on save), import."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmlog.appliances.builtin import CERNVM_CONTEXT_TEMPLATES
from vmlog.cli import project as project_cli
from vmlog.cli.context import app, context_choice
from vmlog.errors import InvalidInput
from vmlog.workspace import Workspace

runner = CliRunner()


def _editor(tmp_path: Path, script: str) -> str:
    """An $EDITOR that runs ``script`` on the file it is given (``$1``)."""
    path = tmp_path / "editor.sh"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_list_json_marks_the_builtins(vmlog_home: Path) -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(CERNVM_CONTEXT_TEMPLATES) and all(r["builtin"] for r in rows)
    listing = runner.invoke(app, ["list"])
    assert "cernvm-cms-opendata" in listing.stdout and "built-in" in listing.stdout


def test_new_from_builtin_then_show(vmlog_home: Path) -> None:
    assert runner.invoke(app, ["new", "atlas-mine", "--from", "cernvm-atlas"]).exit_code == 0
    shown = runner.invoke(app, ["show", "atlas-mine", "--json"])
    data = json.loads(shown.stdout)
    assert data["builtin"] is False and data["text"] == CERNVM_CONTEXT_TEMPLATES["cernvm-atlas"]
    assert (vmlog_home / "config" / "contexts" / "atlas-mine.toml").is_file()


def test_edit_saves_a_valid_change(vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(app, ["new", "box"])
    monkeypatch.setenv("VISUAL", _editor(tmp_path, "sed -i 's/^user = .*/user = \"physicist\"/' \"$1\""))
    result = runner.invoke(app, ["edit", "box"])
    assert result.exit_code == 0, result.output
    text = (vmlog_home / "config" / "contexts" / "box.toml").read_text()
    assert 'user = "physicist"' in text


def test_an_invalid_edit_keeps_the_old_and_the_draft(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.invoke(app, ["new", "box"])
    before = (vmlog_home / "config" / "contexts" / "box.toml").read_text()
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, "sed -i 's/{hostname}/{hots}/' \"$1\""))
    result = runner.invoke(app, ["edit", "box"])
    assert isinstance(result.exception, InvalidInput)
    assert "{hots}" in result.exception.message and "kept as it was" in result.exception.message
    assert (vmlog_home / "config" / "contexts" / "box.toml").read_text() == before
    draft = Path(result.exception.message.rsplit(" ", 1)[-1])
    assert "{hots}" in draft.read_text()
    draft.unlink()


def test_builtins_cannot_be_edited_or_removed(vmlog_home: Path) -> None:
    for args in (["edit", "cernvm-atlas"], ["rm", "cernvm-atlas"]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, InvalidInput) and "--from cernvm-atlas" in result.exception.fix


def test_export_import_round_trip_and_hostile_refusal(vmlog_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "atlas.toml"
    assert runner.invoke(app, ["export", "cernvm-atlas", "-o", str(out)]).exit_code == 0
    assert runner.invoke(app, ["import", str(out), "--name", "atlas-copy"]).exit_code == 0
    hostile = tmp_path / "evil.toml"
    hostile.write_text('kind = "nocloud"\n[[extra_files]]\npath = "/root/x"\nsource = "/etc/shadow"\n')
    result = runner.invoke(app, ["import", str(hostile)])
    assert isinstance(result.exception, InvalidInput) and "source" in result.exception.message
    assert not (vmlog_home / "config" / "contexts" / "evil.toml").exists()


def test_context_value_is_a_file_or_a_template_name(tmp_path: Path) -> None:
    file = tmp_path / "ctx.toml"
    file.write_text('user = "x"\n')
    assert context_choice(str(file)) == (None, file)
    assert context_choice("cernvm-atlas") == ("cernvm-atlas", None)
    assert context_choice("missing.toml") == (None, Path("missing.toml"))


def test_project_new_with_context_names_the_ssh_user(vmlog_home: Path, tmp_path: Path) -> None:
    image = tmp_path / "cloud.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0example me@host\n")
    result = runner.invoke(
        project_cli.app,
        ["new", "ana", str(image), "--context", "cernvm-default", "--user", "alice", "--ssh-key", str(key)],
        env={**os.environ},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "for alice" in result.output and "cernvm seed" in result.output
    meta = json.loads((Workspace.default().projects.get("ana").root / "setup" / "setup.json").read_text())
    assert meta["ssh"] is True and meta["ssh_port"]


def test_setup_context_option_fills_a_template_for_the_project_setup_makes(vmlog_home: Path, tmp_path: Path) -> None:
    from vmlog.cli import setup as setup_cli

    assert setup_cli._context_for("vmlog-test", None, None, None, None) is None  # setup makes its default one
    named = setup_cli._context_for("vmlog-test", "higgs_1", "cernvm-lhcb", None, None)
    assert named is not None and (named.user, named.hostname) == ("lhcb", "higgs-1")
    default_name = setup_cli._context_for(None, None, "cernvm-default", "dora", None)
    assert default_name is not None and (default_name.user, default_name.hostname) == ("dora", "cernvm")
    file = tmp_path / "ctx.toml"
    file.write_text('user = "eve"\nhostname = "from-file"\n')
    from_file = setup_cli._context_for(None, None, str(file), None, None)
    assert from_file is not None and (from_file.user, from_file.hostname) == ("eve", "from-file")
