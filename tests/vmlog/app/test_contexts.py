"""Context template use cases: create, copy, list, edit, import/export, and the context a new project gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmlog.app import contexts
from vmlog.appliances.builtin import CERNVM_CONTEXT_TEMPLATES
from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.workspace import Workspace

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0example physicist@laptop"


@pytest.fixture
def ws(vmlog_home: Path) -> Workspace:
    return Workspace.default()


def _contexts_dir(ws: Workspace) -> Path:
    return ws.home.config / "contexts"


def test_list_offers_the_builtins_first_marked_and_json_ready(ws: Workspace) -> None:
    contexts.new_template("mine", ctx=ws)
    rows = contexts.list_templates(ctx=ws)
    assert [r.name for r in rows] == [*CERNVM_CONTEXT_TEMPLATES, "mine"]
    assert all(r.builtin and r.path is None for r in rows[:-1]) and not rows[-1].builtin
    data = json.loads(json.dumps([r.to_dict() for r in rows]))
    assert data[1]["name"] == "cernvm-atlas" and data[1]["kind"] == "cernvm" and data[1]["builtin"] is True
    assert data[-1]["path"] == str(_contexts_dir(ws) / "mine.toml")


def test_copy_of_a_builtin_is_an_editable_file(ws: Workspace) -> None:
    details = contexts.new_template("atlas-squid", copy_from="cernvm-atlas", ctx=ws)
    assert details.text == CERNVM_CONTEXT_TEMPLATES["cernvm-atlas"]
    edited = details.text.replace('"DIRECT"', '"http://squid.example.org:3128"')
    contexts.save_template_text("atlas-squid", edited, ctx=ws)
    filled = contexts.context_for_project("p1", template="atlas-squid", ctx=ws)
    assert filled.context.cvmfs_http_proxy == "http://squid.example.org:3128" and filled.kind == "cernvm"
    with pytest.raises(InvalidInput, match="built-in"):
        contexts.template_for_edit("cernvm-atlas", ctx=ws)
    with pytest.raises(InvalidInput, match="built-in"):
        contexts.remove_template("cernvm-atlas", ctx=ws)


def test_an_invalid_edit_keeps_the_old_template(ws: Workspace) -> None:
    old = contexts.new_template("box", ctx=ws).text
    with pytest.raises(InvalidInput, match=r"\{usr\}"):
        contexts.save_template_text("box", old.replace("{user}", "{usr}"), ctx=ws)
    assert contexts.show_template("box", ctx=ws).text == old


def test_export_then_import_moves_one_template(ws: Workspace, tmp_path: Path) -> None:
    contexts.new_template("box", description="for the tutorial", ctx=ws)
    exported = contexts.export_template("box", tmp_path, ctx=ws)
    assert exported == tmp_path / "box.toml"
    with pytest.raises(AlreadyExists):
        contexts.export_template("box", exported, ctx=ws)
    imported = contexts.import_template(exported, name="box2", ctx=ws)
    assert imported.summary.description == "for the tutorial" and imported.text == exported.read_text()
    with pytest.raises(AlreadyExists):
        contexts.import_template(exported, name="box2", ctx=ws)
    contexts.import_template(exported, name="box2", replace=True, ctx=ws)


@pytest.mark.parametrize(
    "content",
    [
        'kind = "nocloud"\nssh_public_key_file = "~/.ssh/id_ed25519.pub"\n',
        'kind = "nocloud"\nhostname = "{hostname}{secret}"\n',
        "not toml at all [",
        'kind = "nocloud"\n#' + "x" * 70000 + "\n",
    ],
)
def test_a_refused_import_writes_nothing(ws: Workspace, tmp_path: Path, content: str) -> None:
    hostile = tmp_path / "hostile.toml"
    hostile.write_text(content)
    with pytest.raises(InvalidInput):
        contexts.import_template(hostile, ctx=ws)
    assert not _contexts_dir(ws).exists() or list(_contexts_dir(ws).iterdir()) == []


def test_import_under_a_builtin_name_is_refused(ws: Workspace, tmp_path: Path) -> None:
    source = contexts.export_template("cernvm-atlas", tmp_path, ctx=ws)
    with pytest.raises(InvalidInput, match="built-in"):
        contexts.import_template(source, replace=True, ctx=ws)


def test_context_for_project_fills_variables_and_options_win(ws: Workspace, tmp_path: Path) -> None:
    key_file = tmp_path / "id_test.pub"
    key_file.write_text(KEY + "\n")
    contexts.new_template("box", ctx=ws)
    filled = contexts.context_for_project("my_analysis", template="box", user="bob", ssh_key_file=key_file, ctx=ws)
    assert (filled.context.user, filled.context.hostname, filled.context.ssh_public_key) == ("bob", "my-analysis", KEY)
    atlas = contexts.context_for_project("p", template="cernvm-atlas", user="carol", ctx=ws)
    assert atlas.context.user == "carol"  # --user wins over the template's own user
    assert contexts.context_for_project("p", template="cernvm-atlas", ctx=ws).context.user == "atlas"
    with pytest.raises(NotFound):
        contexts.context_for_project("p", template="nosuch", ctx=ws)
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(InvalidInput, match="public key"):
        contexts.context_for_project("p", template="box", ssh_key_file=bad_key, ctx=ws)


def test_the_login_user_fills_user_but_root_never_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contexts.getpass, "getuser", lambda: "physicist")
    assert contexts.login_user() == "physicist"
    for name in ("root", "Not Valid"):
        monkeypatch.setattr(contexts.getpass, "getuser", lambda name=name: name)
        assert contexts.login_user() == "vmlog"
