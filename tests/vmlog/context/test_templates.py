"""Context templates: variables filled at use, literal braces, and a template from elsewhere read as hostile input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmlog.appliances.builtin import CERNVM_CONTEXT_TEMPLATES
from vmlog.context.template_store import TemplateStore, read_template_file
from vmlog.context.templates import (
    MAX_TEMPLATE_BYTES,
    ContextTemplate,
    check_template_name,
    skeleton,
    validate_template,
)
from vmlog.context.userdata import render_cernvm, render_nocloud
from vmlog.errors import AlreadyExists, InvalidInput, NotFound

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0example physicist@laptop"
VALUES = {"project": "higgs_2026", "hostname": "higgs-2026", "user": "alice", "ssh_key": KEY}

TEMPLATE = """\
kind = "nocloud"
description = "analysis box"
user = "{user}"
hostname = "{hostname}"
ssh_public_key = "{ssh_key}"
[[extra_files]]
path = "/etc/motd"
content = "project {project}; a literal {{brace}} and ${{HOME}}\\n"
[extra_user_data]
runcmd = ["echo {project} > /var/tmp/project"]
"""


def test_variables_are_filled_and_double_braces_stay_literal() -> None:
    ctx = ContextTemplate("box", TEMPLATE).fill(VALUES)
    assert (ctx.user, ctx.hostname, ctx.ssh_public_key) == ("alice", "higgs-2026", KEY)
    assert ctx.extra_files[0].content == "project higgs_2026; a literal {brace} and ${HOME}\n"
    assert ctx.extra_user_data == {"runcmd": ["echo higgs_2026 > /var/tmp/project"]}


def test_an_empty_ssh_key_means_none() -> None:
    ctx = ContextTemplate("box", TEMPLATE).fill({**VALUES, "ssh_key": ""})
    assert ctx.ssh_public_key is None


def test_unknown_variables_are_named() -> None:
    text = TEMPLATE.replace("{hostname}", "{host}").replace("{project}", "{projcet}")
    with pytest.raises(InvalidInput) as caught:
        validate_template(text, name="box")
    assert "{host}" in caught.value.message and "{projcet}" in caught.value.message
    assert "{{" in caught.value.fix  # how to write a literal brace


@pytest.mark.parametrize("bad", ["{project!r}", "{project:>20}", "{project.name}", "{0}", "{", "}", "{}"])
def test_anything_but_a_plain_variable_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        validate_template(f'kind = "nocloud"\nhostname = "x{bad}"\n')


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('kind = "nocloud"\nssh_public_key_file = "/home/me/.ssh/id_ed25519.pub"\n', "ssh_public_key_file"),
        ('kind = "nocloud"\n[[extra_files]]\npath = "/x"\nsource = "/etc/shadow"\n', "source"),
        ('kind = "nocloud"\nrootpw = "x"\n', "rootpw"),
        ('kind = "windows"\n', "windows"),
        ('description = "no kind"\n', "no kind"),
        ('kind = "nocloud"\nuser = 5\n', "'user'"),
        ('kind = "nocloud"\ncvmfs_repositories = "atlas.cern.ch"\n', "cvmfs_repositories"),
        ('kind = "nocloud"\nuser = "Root User"\n', "user name"),
        ("kind = nocloud\n", "not valid TOML"),
        ('kind = "nocloud"\nextra_user_data = "echo no shebang"\n', "extra user-data"),
    ],
)
def test_a_hostile_or_broken_template_is_refused_with_what_is_wrong(text: str, said: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_template(text, name="t")
    assert said in caught.value.message


def test_a_cernvm_template_over_the_16k_user_data_limit_is_refused() -> None:
    text = f'kind = "cernvm"\n[[extra_files]]\npath = "/big"\ncontent = "{"z" * 20000}"\n'
    with pytest.raises(InvalidInput, match="limit"):
        validate_template(text)
    validate_template(text.replace("cernvm", "nocloud"))  # a NoCloud seed has no such cap


def test_template_size_is_bounded() -> None:
    with pytest.raises(InvalidInput, match="byte limit"):
        validate_template('kind = "nocloud"\n#' + "x" * MAX_TEMPLATE_BYTES + "\n")


@pytest.mark.parametrize("name", ["", "../x", "a/b", "UPPER", ".hidden", "x.toml", "a" * 65, "dot."])
def test_bad_template_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_template_name(name)


@pytest.mark.parametrize("name", list(CERNVM_CONTEXT_TEMPLATES))
def test_every_builtin_template_renders_for_cernvm_and_nocloud(name: str) -> None:
    settings = validate_template(CERNVM_CONTEXT_TEMPLATES[name], name=name)
    assert settings["kind"] == "cernvm" and settings["cvmfs_repositories"]
    ctx = ContextTemplate(name, CERNVM_CONTEXT_TEMPLATES[name]).fill(VALUES)
    assert ctx.ssh_public_key == KEY and ctx.cvmfs_http_proxy == "DIRECT"
    assert "[cernvm]\nrepositories=" in render_cernvm(ctx)
    assert "CVMFS_REPOSITORIES=" in render_nocloud(ctx)[1]


@pytest.mark.parametrize("kind", ["nocloud", "cernvm"])
def test_the_skeleton_is_a_valid_template(kind: str) -> None:
    assert validate_template(skeleton(kind, 'says "hi"'))["description"] == 'says "hi"'


def test_store_lists_builtins_first_and_keeps_them_read_only(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path)
    store.save("zeta", TEMPLATE, replace=False)
    store.save("alpha", TEMPLATE, replace=False)
    assert store.names() == [*CERNVM_CONTEXT_TEMPLATES, "alpha", "zeta"]
    assert (tmp_path / "contexts" / "alpha.toml").read_text() == TEMPLATE  # readable, as written
    assert store.get("cernvm-atlas").builtin and not store.get("alpha").builtin
    with pytest.raises(InvalidInput, match="built-in"):
        store.remove("cernvm-atlas")
    with pytest.raises(InvalidInput, match="built-in"):
        store.save("cernvm-atlas", TEMPLATE, replace=True)
    with pytest.raises(AlreadyExists):
        store.save("alpha", TEMPLATE, replace=False)
    store.remove("alpha")
    with pytest.raises(NotFound):
        store.get("alpha")


def test_store_refuses_an_invalid_text_and_keeps_the_old(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path)
    store.save("box", TEMPLATE, replace=False)
    with pytest.raises(InvalidInput):
        store.save("box", TEMPLATE.replace("{user}", "{nobody}"), replace=True)
    assert store.get("box").text == TEMPLATE


def test_reading_a_foreign_file_is_bounded_and_refuses_links_pipes_and_binary(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(TEMPLATE)
    assert read_template_file(good) == TEMPLATE
    link = tmp_path / "link.toml"
    link.symlink_to(good)
    with pytest.raises(InvalidInput, match="symbolic link"):
        read_template_file(link)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_template_file(fifo)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_TEMPLATE_BYTES + 1))
    with pytest.raises(InvalidInput, match="limit"):
        read_template_file(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"kind = \xff\xfe")
    with pytest.raises(InvalidInput, match="UTF-8"):
        read_template_file(binary)
    with pytest.raises(NotFound):
        read_template_file(tmp_path / "missing.toml")
