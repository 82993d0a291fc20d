"""An imported project is usable: the importer's SSH forward and seed, and the releases it could not re-mount."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from chain_helpers import write_pattern
from exchange_helpers import context_at

from hypervisors.spec import VMSpec
from vmlog.app import contexts, exchange, logbook, projects
from vmlog.app import states as app_states
from vmlog.app.setup_project import ssh_access
from vmlog.context.project_setup import read_setup_meta, read_stored_context
from vmlog.projects.release_records import ProjectRelease
from vmlog.releases.model import Release
from vmlog.workspace import Workspace

RELEASE = ProjectRelease(
    name="24.0.3",
    release=Release(name="24.0.3", revision=7, tag="v7", source_url="http://gone.example/cvmfs/sw.example.org",
                    path="sw/software/24.0/24.0.3", pin="a" * 40),
    source={"kind": "http-tree", "url": "http://gone.example/releases"},
    guest="share", guest_path="/cvmfs-releases/24.0.3",
)  # fmt: skip


@pytest.fixture
def importer_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The importer's own SSH key pair in their ``~/.ssh``."""
    home = tmp_path / "importer"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "importer@host",
                    "-f", str(home / ".ssh" / "id_ed25519")], check=True)  # fmt: skip
    monkeypatch.setenv("HOME", str(home))
    return (home / ".ssh" / "id_ed25519.pub").read_text().strip()


def _sent_bundle(tmp_path: Path, base_image: Path) -> tuple[Path, str]:
    """A full bundle of a state that had a release mounted from a source the importer does not have."""
    sender = context_at(tmp_path / "home-a")
    image = sender.images.add_file(base_image, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, ctx=sender)
    files = sender.projects.get("analysis")
    write_pattern(files.layers.path(files.load().live["system"]), 0x22, 0, 64 * 1024)
    state = app_states.save_state("analysis", "s1", ctx=sender)
    files.rewrite_state(dataclasses.replace(files.states()[state.id], release_mounts=[RELEASE.to_dict()]))
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender)
    return bundle.path, state.id


def test_a_new_project_from_an_import_gets_the_importers_forward_seed_and_user(
    tmp_path: Path, base_image: Path, importer_key: str
) -> None:
    bundle, sid = _sent_bundle(tmp_path, base_image)
    receiver = context_at(tmp_path / "home-b")
    receiver.images.add_file(base_image, name="testbase", version="1", format="raw")
    result = exchange.import_state(bundle, trust=True, ctx=receiver)
    assert result.new_project and result.ssh_port and result.user == contexts.login_user()

    files = receiver.projects.get(result.project)
    spec = VMSpec.from_dict(files.load().spec)
    (forward,) = [f for nic in spec.nics for f in nic.forwards]
    assert (forward.host_port, forward.guest_port) == (result.ssh_port, 22)
    (seed,) = [d for d in spec.disks if d.label == "seed"]
    assert seed.device == "cdrom" and seed.path.is_file()
    stored = read_stored_context(files.root)
    assert stored is not None and stored["ssh_public_key"] == importer_key and stored["user"] == result.user
    # a new instance-id, so the guest's cloud-init runs its per-instance modules (the key) again
    assert stored["instance_id"] == f"vmlog-{stored['hostname']}-{sid[:12]}"
    assert read_setup_meta(files.root)["ssh_port"] == result.ssh_port
    access = ssh_access(result.project, check=False, ctx=receiver)
    assert (access.user, access.port) == (result.user, result.ssh_port)
    assert access.identity == str(Path.home() / ".ssh" / "id_ed25519")


def test_the_import_says_which_releases_it_could_not_mount(
    tmp_path: Path, base_image: Path, importer_key: str
) -> None:
    bundle, _sid = _sent_bundle(tmp_path, base_image)
    receiver = context_at(tmp_path / "home-b")
    receiver.images.add_file(base_image, name="testbase", version="1", format="raw")
    result = exchange.import_state(bundle, trust=True, ctx=receiver)
    (line,) = result.releases_not_mounted
    assert "24.0.3 revision 7" in line and "http://gone.example/releases" in line and "not configured" in line
    assert any("24.0.3 revision 7" in w and "not re-mounted" in w for w in result.warnings)
    (row,) = [e for e in logbook.history(result.project, ctx=receiver) if e.get("action") == "state import"]
    assert "24.0.3 revision 7" in row["message"] and "not re-mounted" in row["message"]


def test_without_a_key_the_import_warns_that_ssh_cannot_log_in(
    tmp_path: Path, base_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle, _sid = _sent_bundle(tmp_path, base_image)
    monkeypatch.setenv("HOME", str(tmp_path / "keyless"))
    receiver: Workspace = context_at(tmp_path / "home-b")
    receiver.images.add_file(base_image, name="testbase", version="1", format="raw")
    result = exchange.import_state(bundle, trust=True, ctx=receiver)
    assert any("no SSH public key" in w for w in result.warnings)
