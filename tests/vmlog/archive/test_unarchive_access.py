"""An unarchived project is usable as an imported one is: the importer's SSH forward, seed, user and key, its agent."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from archive_fixtures import three_state_project

from hypervisors.base import Capability
from hypervisors.errors import OperationTimeout
from hypervisors.spec import VMSpec
from vmlog.app import states as app_states
from vmlog.app.archive import archive_project, unarchive_project
from vmlog.app.import_project import create_imported_project
from vmlog.app.setup_project import new_project_with_context, ssh_access
from vmlog.context.model import Context
from vmlog.context.project_setup import KNOWN_HOSTS_FILE, read_setup_meta, read_stored_context, setup_dir
from vmlog.projects import release_guest
from vmlog.projects import releases as project_releases
from vmlog.projects.release_guest import guest_facts
from vmlog.projects.release_records import ProjectRelease, write_project_releases
from vmlog.releases.model import Release
from vmlog.workspace import Workspace

GONE = ProjectRelease(
    name="24.0.3",
    release=Release(name="24.0.3", revision=7, tag="v7", source_url="http://127.0.0.1:9/releases",
                    path="releases/24.0/24.0.3", pin="a" * 64),
    source={"kind": "http-tree", "url": "http://127.0.0.1:9/releases"},
    guest="share", guest_path="/cvmfs-releases/24.0.3",
)  # fmt: skip


def _person(root: Path, login: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Become ``login`` with a home of their own holding an SSH key pair; their public key."""
    (root / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{login}@host",
                    "-f", str(root / ".ssh" / "id_ed25519")], check=True)  # fmt: skip
    monkeypatch.setenv("HOME", str(root))
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, login)
    return (root / ".ssh" / "id_ed25519.pub").read_text().strip()


def _seeded_project(tmp_path: Path, key: str, *, agent: str | None = "standard") -> tuple[Workspace, Path, str]:
    """Project ``analysis`` made with a seed for alice on a plain base, one state saved, archived; its state id."""
    ctx = Workspace.default()
    base = tmp_path / "base.raw"
    with open(base, "wb") as fh:
        fh.write(os.urandom(64 << 10))
        fh.truncate(16 << 20)
    image = ctx.images.add_file(base, name="cloudbase", version="1", format="raw")
    new_project_with_context("analysis", image.sha256, Context(user="alice", ssh_public_key=key, hostname="analysis"),
                             ctx=ctx)  # fmt: skip
    root = ctx.projects.get("analysis").root
    meta = read_setup_meta(root) or {}
    (setup_dir(root) / "setup.json").write_text(json.dumps({**meta, "guest_agent": agent}))  # the sender's agent
    (setup_dir(root) / KNOWN_HOSTS_FILE).write_text("[127.0.0.1]:2222 ssh-ed25519 AAAAC3senderhostkey\n")
    state = app_states.save_state("analysis", "s1", ctx=ctx)
    out = tmp_path / "analysis.vmlarchive"
    archive_project("analysis", out, ctx=ctx)
    return ctx, out, state.id


def _new_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    (tmp_path / "home-b").mkdir()
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "home-b"))
    return Workspace.default()


def test_an_unarchived_project_gets_the_importers_forward_seed_user_and_key(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender_key = _person(tmp_path / "alice", "alice", monkeypatch)
    sender, out, sid = _seeded_project(tmp_path, sender_key)
    sent_port = read_setup_meta(sender.projects.get("analysis").root)["ssh_port"]
    importer_key = _person(tmp_path / "bob", "bob", monkeypatch)
    other = _new_home(tmp_path, monkeypatch)

    result = unarchive_project(out, ctx=other)
    assert result.user == "bob" and result.ssh_port and result.ssh_port != sent_port
    files = other.projects.get("analysis")
    spec = VMSpec.from_dict(files.load().spec)
    (forward,) = [f for nic in spec.nics for f in nic.forwards]
    assert (forward.host_port, forward.guest_port) == (result.ssh_port, 22)
    (seed,) = [d for d in spec.disks if d.label == "seed"]
    assert seed.path == files.root / "setup" / "seed.iso" and seed.device == "cdrom"
    assert importer_key.split()[1].encode() in seed.path.read_bytes()
    assert sender_key.split()[1].encode() not in seed.path.read_bytes()
    stored = read_stored_context(files.root)
    assert stored["user"] == "bob" and stored["ssh_public_key"] == importer_key
    assert stored["instance_id"] == f"vmlog-analysis-{sid[:12]}"  # new: the guest runs the per-instance steps
    meta = read_setup_meta(files.root)
    assert meta["ssh_port"] == result.ssh_port and meta["guest_agent"] == "standard"
    assert guest_facts(files, files.load())["agent_kind"] == "standard"  # the sender's agent came along
    assert not (files.root / "setup" / KNOWN_HOSTS_FILE).exists()  # the guest makes new host keys
    access = ssh_access("analysis", check=False, ctx=other)
    assert (access.user, access.port) == ("bob", result.ssh_port)
    assert access.identity == str(tmp_path / "bob" / ".ssh" / "id_ed25519")
    assert any("vml ssh analysis" in n and "bob" in n for n in result.notes)
    assert any("new instance-id" in n for n in result.notes)


def test_the_archiving_user_keeps_the_seed_and_its_instance(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _person(tmp_path / "alice", "alice", monkeypatch)
    sender, out, _sid = _seeded_project(tmp_path, key)
    archived = read_stored_context(sender.projects.get("analysis").root)
    other = _new_home(tmp_path, monkeypatch)
    result = unarchive_project(out, ctx=other)
    files = other.projects.get("analysis")
    assert read_stored_context(files.root) == archived  # same user and key: no new instance-id
    assert (files.root / "setup" / KNOWN_HOSTS_FILE).is_file()  # the guest keeps its host keys
    assert result.user == "alice" and not any("new instance-id" in n for n in result.notes)
    (forward,) = [f for nic in VMSpec.from_dict(files.load().spec).nics for f in nic.forwards]
    assert forward.host_port == result.ssh_port


def test_a_project_without_a_seed_gets_one_and_names_the_releases_not_mounted(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = three_state_project(vmlog_home, tmp_path)  # `vml project new`: no setup, no seed, no forward
    files = made.ctx.projects.get("analysis")
    current = files.load().current
    files.rewrite_state(dataclasses.replace(files.states()[current], release_mounts=[GONE.to_dict()]))
    out = tmp_path / "plain.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    key = _person(tmp_path / "bob", "bob", monkeypatch)
    other = _new_home(tmp_path, monkeypatch)

    result = unarchive_project(out, ctx=other)
    files = other.projects.get("analysis")
    spec = VMSpec.from_dict(files.load().spec)
    assert [f.guest_port for nic in spec.nics for f in nic.forwards] == [22]
    assert [d.label for d in spec.disks if d.label == "seed"] == ["seed"]
    stored = read_stored_context(files.root)
    assert stored["user"] == "bob" and stored["ssh_public_key"] == key
    assert read_setup_meta(files.root)["context"] == "nocloud"
    assert guest_facts(files, files.load())["agent_kind"] is None  # a plain base: found out after boot
    (line,) = result.releases_not_mounted
    assert "24.0.3 revision 7" in line and "127.0.0.1:9" in line, line
    assert any(n.startswith("release not re-mounted") and "24.0.3" in n for n in result.notes)
    (row,) = [e for e in other.logbook.entries(project="analysis") if e.action == "project unarchive"]
    assert "24.0.3 revision 7" in row.message and "not re-mounted" in row.message


class _Agent:
    """The standard agent of a running guest: answers a ping only if ``alive``; records what it runs."""

    kind = "qemu-ga"
    runs_as_root = True

    def __init__(self, alive: bool) -> None:
        self.alive, self.pings, self.commands = alive, 0, []

    def __enter__(self) -> _Agent:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def wait_ready(self, timeout: float) -> None:
        self.pings += 1
        if not self.alive:
            raise OperationTimeout(f"no answer from the guest agent within {timeout} s")

    def check_shell(self, command: str, *, timeout: float = 60.0) -> str:
        self.commands.append(command)
        return ""


class _Backend:
    name = "kvm"

    def __init__(self, agent: _Agent) -> None:
        self.agent = agent

    def can(self, capability: Capability) -> bool:
        return capability is Capability.GUEST_AGENT

    def guest_agent(self, _vm_name: str) -> _Agent:
        return self.agent


def _plain_unarchived(vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Path]:
    made = three_state_project(vmlog_home, tmp_path)
    out = tmp_path / "plain.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    _person(tmp_path / "bob", "bob", monkeypatch)
    other = _new_home(tmp_path, monkeypatch)
    unarchive_project(out, ctx=other)
    return other, other.projects.get("analysis").root


def _with_agent(monkeypatch: pytest.MonkeyPatch, alive: bool) -> _Agent:
    agent = _Agent(alive)

    @contextmanager
    def open_backend(_project: object) -> Iterator[_Backend]:
        yield _Backend(agent)

    monkeypatch.setattr(release_guest, "open_backend", open_backend)
    return agent


def test_after_boot_a_plain_base_learns_its_standard_agent_and_mounts_through_it(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other, root = _plain_unarchived(vmlog_home, tmp_path, monkeypatch)
    files = other.projects.get("analysis")
    write_project_releases(files, [GONE])
    agent = _with_agent(monkeypatch, alive=True)
    assert project_releases.after_boot(files, files.load()) == []  # mounted, checked, in fstab
    assert read_setup_meta(root)["guest_agent"] == "standard"
    assert any("mount -t virtiofs -o ro rel-24.0.3 /cvmfs-releases/24.0.3" in c for c in agent.commands)
    assert any("ro,nofail" in c and "/etc/fstab" in c for c in agent.commands)
    assert any("/proc/mounts" in c for c in agent.commands)


def test_a_guest_where_no_agent_answered_is_not_waited_for_again(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other, root = _plain_unarchived(vmlog_home, tmp_path, monkeypatch)
    files = other.projects.get("analysis")
    write_project_releases(files, [GONE])
    agent = _with_agent(monkeypatch, alive=False)
    (warning,) = project_releases.after_boot(files, files.load())
    assert "mount -t virtiofs -o ro rel-24.0.3 /cvmfs-releases/24.0.3" in warning and agent.commands == []
    assert read_setup_meta(root)["guest_agent"] == "none"
    project_releases.after_boot(files, files.load())
    assert agent.pings == 1  # the next boot does not wait for an agent that was not there
    agent.alive = True  # qemu-ga installed since: `vml release mount` on the running guest asks again
    assert release_guest.find_guest_agent(files, files.load(), timeout=1, again=True) == "standard"
    assert read_setup_meta(root)["guest_agent"] == "standard"


def test_an_import_records_the_agent_its_bundle_carried(vmlog_home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _person(tmp_path / "bob", "bob", monkeypatch)
    ctx = Workspace.default()
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * (1 << 20))
    image = ctx.images.add_file(base, name="cloudbase", version="1", format="raw")
    made = create_imported_project("carried", image, "ab" * 32, backend="kvm", backend_options=None, cpus=1,
                                   memory_mib=512, guest_agent="standard", ctx=ctx)  # fmt: skip
    files = ctx.projects.get("carried")
    assert made.ssh_port and guest_facts(files, files.load())["agent_kind"] == "standard"
    create_imported_project("plain", image, "cd" * 32, backend="kvm", backend_options=None, cpus=1, memory_mib=512,
                            ctx=ctx)  # fmt: skip
    files = ctx.projects.get("plain")
    assert guest_facts(files, files.load())["agent_unknown"]  # found out after its boot
