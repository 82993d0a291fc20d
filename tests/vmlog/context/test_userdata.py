"""Contextualisation: the Context model, NoCloud and CernVM user-data, the 16 kB limit."""

from __future__ import annotations

import email
import json
from pathlib import Path

import pytest

from vmlog.context.model import Context, ExtraFile
from vmlog.context.userdata import (
    USER_DATA_LIMIT,
    cernvm_iso_layout,
    check_user_data_size,
    render_cernvm,
    render_nocloud,
)
from vmlog.errors import InvalidInput, NotFound

yaml = pytest.importorskip("yaml")

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0example physicist@laptop"


def _ctx(**kw) -> Context:
    base = dict(
        user="alice",
        ssh_public_key=KEY,
        hostname="analysis-1",
        cvmfs_repositories=("atlas.cern.ch", "sft.cern.ch"),
        cvmfs_http_proxy="http://squid.example.org:3128",
        extra_files=(ExtraFile("/etc/motd", 'Welcome "home"\nline two\n', "0640"),),
    )
    base.update(kw)
    return Context(**base)


def _parts(user_data: str) -> dict[str, str]:
    message = email.message_from_string(user_data)
    assert message.is_multipart()
    return {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.get_payload()}


def test_nocloud_cloud_config_parses_as_yaml() -> None:
    meta, user = render_nocloud(_ctx())
    assert user.startswith("#cloud-config\n")
    doc = yaml.safe_load(user)
    assert doc["hostname"] == "analysis-1"
    (alice,) = [u for u in doc["users"] if isinstance(u, dict)]
    assert alice["name"] == "alice" and alice["ssh_authorized_keys"] == [KEY]
    motd = {"path": "/etc/motd", "content": 'Welcome "home"\nline two\n', "permissions": "0640"}
    assert doc["write_files"][0] == motd
    assert doc["write_files"][1]["path"] == "/etc/cvmfs/default.local"  # no amiconfig outside CernVM
    assert yaml.safe_load(meta) == {"instance-id": "vmlog-analysis-1", "local-hostname": "analysis-1"}


def test_extra_user_data_mapping_is_merged() -> None:
    extra = {"runcmd": ["echo hello"], "write_files": [{"path": "/x", "content": "y"}], "hostname": "other"}
    _, user = render_nocloud(_ctx(extra_user_data=extra))
    doc = yaml.safe_load(user)
    assert doc["runcmd"] == ["echo hello"]
    assert [f["path"] for f in doc["write_files"]] == ["/etc/motd", "/etc/cvmfs/default.local", "/x"]  # lists append
    assert doc["hostname"] == "other"  # scalars from the extra data win


def test_extra_user_data_script_becomes_a_mime_part() -> None:
    _, user = render_nocloud(_ctx(extra_user_data="#!/bin/sh\necho ok > /tmp/ok\n"))
    parts = _parts(user)
    assert set(parts) == {"text/cloud-config", "text/x-shellscript"}
    assert yaml.safe_load(parts["text/cloud-config"])["hostname"] == "analysis-1"
    assert parts["text/x-shellscript"].startswith("#!/bin/sh")
    with pytest.raises(InvalidInput, match="must start with"):
        render_nocloud(_ctx(extra_user_data="just text"))


def test_cernvm_user_data_sections() -> None:
    user = render_cernvm(_ctx())
    parts = _parts(user)
    assert list(parts) == ["text/ucernvm", "text/amiconfig-user-data", "text/cloud-config"]
    ucernvm = parts["text/ucernvm"].splitlines()
    assert ucernvm[0] == "[ucernvm-begin]" and ucernvm[-1] == "[ucernvm-end]"
    assert "cvmfs_http_proxy=http://squid.example.org:3128" in ucernvm
    ami = parts["text/amiconfig-user-data"].splitlines()
    cernvm = ami[ami.index("[cernvm]") + 1 :]
    assert "repositories=atlas.cern.ch,sft.cern.ch" in cernvm
    assert "proxy=http://squid.example.org:3128" in cernvm
    assert yaml.safe_load(parts["text/cloud-config"])["users"][1]["ssh_authorized_keys"] == [KEY]
    assert render_cernvm(_ctx()) == user  # same context, same bytes


def test_cernvm_iso_layout() -> None:
    files = cernvm_iso_layout(_ctx())
    assert set(files) == {
        "ec2/latest/user-data",
        "ec2/latest/meta-data.json",
        "openstack/latest/user_data",
        "openstack/latest/meta_data.json",
    }
    assert files["ec2/latest/user-data"] == files["openstack/latest/user_data"]
    assert "[ucernvm-begin]" in files["ec2/latest/user-data"].decode()
    assert json.loads(files["openstack/latest/meta_data.json"])["hostname"] == "analysis-1"


def test_user_data_limit_says_how_much_over() -> None:
    check_user_data_size("x" * USER_DATA_LIMIT)
    with pytest.raises(InvalidInput, match=r"16385 bytes, 1 bytes over the 16384-byte limit"):
        check_user_data_size("x" * (USER_DATA_LIMIT + 1))
    big = _ctx(extra_files=(ExtraFile("/data/blob", "z" * 20000),))
    assert len(render_nocloud(big)[1]) > USER_DATA_LIMIT  # a NoCloud disc has no cap
    with pytest.raises(InvalidInput, match="over the 16384-byte limit"):
        render_cernvm(big)


def test_invalid_values_refused() -> None:
    with pytest.raises(InvalidInput):
        Context(hostname="bad_host!")
    with pytest.raises(InvalidInput):
        Context(user="Root Admin")
    with pytest.raises(InvalidInput):
        Context(ssh_public_key="not a key")
    with pytest.raises(InvalidInput):
        ExtraFile("relative/path", "x")
    with pytest.raises(InvalidInput):
        Context(cvmfs_repositories=("../etc",))


def test_load_toml_and_json(tmp_path: Path) -> None:
    (tmp_path / "id.pub").write_text(KEY + "\n")
    (tmp_path / "motd").write_text("hello\n")
    toml = tmp_path / "context.toml"
    toml.write_text(
        'user = "bob"\nhostname = "calib"\nssh_public_key_file = "id.pub"\n'
        'cvmfs_repositories = "atlas.cern.ch, cms.cern.ch"\n'
        '[[extra_files]]\npath = "/etc/motd"\nsource = "motd"\n'
        '[extra_user_data]\nruncmd = ["date"]\n'
    )
    ctx = Context.load(toml)
    assert ctx.user == "bob" and ctx.ssh_public_key == KEY
    assert ctx.cvmfs_repositories == ("atlas.cern.ch", "cms.cern.ch")
    assert ctx.extra_files == (ExtraFile("/etc/motd", "hello\n"),)
    assert yaml.safe_load(render_nocloud(ctx)[1])["runcmd"] == ["date"]

    js = tmp_path / "context.json"
    js.write_text(json.dumps({"hostname": "j", "cvmfs_http_proxy": "DIRECT"}))
    assert Context.load(js).cvmfs_http_proxy == "DIRECT"
    js.write_text(json.dumps({"hostnam": "typo"}))
    with pytest.raises(InvalidInput, match="unknown context settings: hostnam"):
        Context.load(js)
    with pytest.raises(NotFound):
        Context.load(tmp_path / "missing.toml")
