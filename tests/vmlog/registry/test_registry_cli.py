"""``vml state push|pull`` and ``state list --remote`` against the real registry; logins as the tools keep them."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import typer
from registry_helpers import RunningRegistry
from test_push_pull import BASE_SIZE, write_pattern
from typer.testing import CliRunner

from vmlog.app import projects, states
from vmlog.cli import registry_cli
from vmlog.registry.errors import RegistryAuthError
from vmlog.workspace import Workspace

cli = typer.Typer()
cli.command("push")(registry_cli.push)
cli.command("pull")(registry_cli.pull)
cli.command("list-remote")(registry_cli.list_remote)
runner = CliRunner()


@pytest.fixture
def home_a(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "home-a"))
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * BASE_SIZE)
    write_pattern(base, 0x5A, 0, 512 * 1024, fmt="raw")
    image = ctx.images.add_file(base, name="clibase", version="2", format="raw")
    projects.new_project("fit", image.sha256, ctx=ctx)
    files = ctx.projects.get("fit")
    write_pattern(files.layers.path(files.load().live["system"]), 0x44, 0, 64 * 1024)
    states.save_state("fit", "tuned", ctx=ctx)
    return ctx


def test_push_list_pull_on_the_command_line(
    home_a: Workspace, registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = f"{registry.host}/cli/states"
    login = ["--username", registry.user, "--password-stdin", "--ca-file", str(registry.ca_file)]
    pushed = runner.invoke(cli, ["push", repo, "tuned", "--json", *login], input=registry.password + "\n")
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["reference"] == f"{repo}:tuned"

    listed = runner.invoke(cli, ["list-remote", repo, "--json", *login], input=registry.password)
    entries = {e["tag"]: e for e in json.loads(listed.stdout)["entries"]}
    assert entries["tuned"]["state_name"] == "tuned" and entries["tuned"]["kind"] == "state"

    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "home-b"))
    pulled = runner.invoke(cli, ["pull", f"{repo}:tuned", "--trust", "--json", *login], input=registry.password)
    assert pulled.exit_code == 0, pulled.output
    result = json.loads(pulled.stdout)
    assert result["base_from_registry"] and result["imported"]["state_name"] == "tuned"
    assert Workspace.default().projects.names() == [result["imported"]["project"]]


def test_a_wrong_password_is_refused_with_the_fix(registry: RunningRegistry) -> None:
    done = runner.invoke(cli, ["list-remote", f"{registry.host}/cli/states", "--username", registry.user,
                               "--password-stdin", "--ca-file", str(registry.ca_file)], input="wrong\n")
    assert isinstance(done.exception, RegistryAuthError)
    assert "podman login" in done.exception.fix and registry.user in done.exception.message


def _auth_file(path: Path, registry: RunningRegistry, **extra: object) -> Path:
    token = base64.b64encode(f"{registry.user}:{registry.password}".encode()).decode()
    path.write_text(json.dumps({"auths": {registry.host: {"auth": token}}, **extra}))
    return path


def test_the_podman_auth_file_is_read(registry: RunningRegistry, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(_auth_file(tmp_path / "auth.json", registry)))
    done = runner.invoke(cli, ["list-remote", f"{registry.host}/cli/empty", "--json", "--ca-file",
                               str(registry.ca_file)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["entries"] == []


def test_docker_config_with_a_credential_helper(registry: RunningRegistry, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``credHelpers`` names ``docker-credential-NAME``, run with the host on stdin, as docker does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-vmltest"
    answer = json.dumps({"ServerURL": registry.host, "Username": registry.user, "Secret": registry.password})
    helper.write_text(f"#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = {registry.host} ] &&"
                      f" echo '{answer}' && exit 0\necho 'credentials not found in native keychain'; exit 1\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credHelpers": {registry.host: "vmltest"}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    done = runner.invoke(cli, ["list-remote", f"{registry.host}/cli/empty", "--json", "--ca-file",
                               str(registry.ca_file)])
    assert done.exit_code == 0, done.output


def test_a_ca_in_certs_d_is_trusted(registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The containers convention: ``certs.d/HOST:PORT/ca.crt`` (here the per-user one under XDG_CONFIG_HOME)."""
    folder = tmp_path / "xdg" / "containers" / "certs.d" / registry.host
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_bytes(registry.ca_file.read_bytes())
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(_auth_file(tmp_path / "auth.json", registry)))
    done = runner.invoke(cli, ["list-remote", f"{registry.host}/cli/empty"])
    assert done.exit_code == 0, done.output


class MemoryKeyring:
    """A stand-in for the ``keyring`` package (and its backend): passwords by (service, user)."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], str] = {}
        self.errors = type("errors", (), {"KeyringError": RuntimeError})

    def get_password(self, service: str, user: str) -> str | None:
        return self.kept.get((service, user))

    def set_password(self, service: str, user: str, password: str) -> None:
        self.kept[(service, user)] = password


def test_remember_password_keeps_it_in_the_keyring_for_the_next_command(
    home_a: Workspace, registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = MemoryKeyring()
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setitem(sys.modules, "keyring.errors", fake.errors)
    repo = f"{registry.host}/cli/keyring"
    user = ["--username", registry.user, "--ca-file", str(registry.ca_file)]
    without = runner.invoke(cli, ["list-remote", repo, *user])
    assert isinstance(without.exception, RegistryAuthError) and "--remember-password" in without.exception.fix

    failed = runner.invoke(cli, ["pull", f"{repo}:none", "--password-stdin", "--remember-password", *user],
                           input=registry.password)
    assert "has no none" in str(failed.exception) and fake.kept == {}  # kept only once a command succeeded

    pushed = runner.invoke(cli, ["push", repo, "tuned", "--password-stdin", "--remember-password", *user],
                           input=registry.password)
    assert pushed.exit_code == 0, pushed.output
    assert fake.kept == {(f"vmlog-registry:{registry.host}", registry.user): registry.password}
    again = runner.invoke(cli, ["list-remote", repo, "--json", *user])
    assert again.exit_code == 0, again.output
    assert [e["tag"] for e in json.loads(again.stdout)["entries"] if e["kind"] == "state"] == ["tuned"]
