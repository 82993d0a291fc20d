"""`vml project new --context` on a local image: a seed and an SSH forward as setup gives, and `vml ssh`'s user."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from hypervisors.spec import VMSpec
from vmlog.app import contexts, setup_project
from vmlog.app.setup_project import VAGRANT_USER, new_project_with_context, ssh_access
from vmlog.context.project_setup import read_setup_meta, read_stored_context
from vmlog.errors import AlreadyExists, InvalidInput
from vmlog.workspace import Workspace

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJx0example physicist@laptop"


@pytest.fixture
def ws(vmlog_home: Path) -> Workspace:
    return Workspace.default()


def _cloud_image(tmp_path: Path) -> Path:
    image = tmp_path / "jammy-server-cloudimg-amd64.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    return image


def test_local_image_with_a_template_gets_seed_and_ssh_forward(ws: Workspace, tmp_path: Path) -> None:
    key_file = tmp_path / "id.pub"
    key_file.write_text(KEY)
    filled = contexts.context_for_project("ana", template="cernvm-atlas", ssh_key_file=key_file, ctx=ws)
    made = new_project_with_context(
        "ana", str(_cloud_image(tmp_path)), filled.context, kind=filled.kind, memory_mib=512, ctx=ws
    )
    assert made.seed == "cernvm" and made.user == "atlas" and made.ssh_port and made.warnings == []
    files = ws.projects.get("ana")
    spec = VMSpec.from_dict(files.load().spec)
    (seed,) = [d for d in spec.disks if d.label == "seed"]
    assert seed.device == "cdrom" and seed.path.is_file()
    (forward,) = [f for nic in spec.nics for f in nic.forwards]
    assert (forward.host_port, forward.guest_port) == (made.ssh_port, 22)
    meta = read_setup_meta(files.root)
    assert meta is not None and meta["context"] == "cernvm" and meta["ssh_port"] == made.ssh_port
    assert read_stored_context(files.root)["cvmfs_repositories"][0] == "atlas.cern.ch"
    access = ssh_access("ana", check=False, ctx=ws)
    assert (access.user, access.port) == ("atlas", made.ssh_port)
    assert json.loads(json.dumps(made.to_dict()))["seed"] == "cernvm"


def test_store_image_with_a_context_file_defaults_to_nocloud(ws: Workspace, tmp_path: Path) -> None:
    new_project_with_context("first", str(_cloud_image(tmp_path)), _ctx(), ctx=ws)
    stored = ws.images.list()[0]
    made = new_project_with_context("second", stored.sha256, _ctx(), ctx=ws)
    assert made.seed == "nocloud" and len(ws.images.list()) == 1
    assert ssh_access("second", check=False, ctx=ws).user == "bob"
    with pytest.raises(AlreadyExists):
        new_project_with_context("second", stored.sha256, _ctx(), ctx=ws)


def _ctx() -> setup_project.Context:
    return setup_project.Context(user="bob", hostname="h", ssh_public_key=KEY)


BOX_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def _box(tmp_path: Path, *, key: bytes | None = None) -> Path:
    """A vagrant-libvirt v1 box: metadata.json, Vagrantfile and box.img (qcow2), and ``key`` as `vagrant package`
    includes a machine's own key."""
    disk = tmp_path / "box.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    box = tmp_path / "debian12.box"
    with tarfile.open(box, "w:gz") as tar:
        meta = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": 1}).encode()
        members = [("metadata.json", meta), ("Vagrantfile", b"Vagrant.configure('2') do |c| end\n")]
        members += [("vagrant_private_key", key)] if key is not None else []
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(disk, "box.img")
    return box


def test_a_vagrant_box_without_context_is_reached_as_vagrant(ws: Workspace, tmp_path: Path) -> None:
    box = _box(tmp_path)
    assert setup_project.is_vagrant_box(str(box))
    made = new_project_with_context("boxed", str(box), None, ctx=ws)
    assert made.seed == "none" and made.user == VAGRANT_USER and made.ssh_port
    spec = VMSpec.from_dict(ws.projects.get("boxed").load().spec)
    assert [d for d in spec.disks if d.label == "seed"] == []
    access = ssh_access("boxed", check=False, ctx=ws)
    assert access.user == VAGRANT_USER and access.identity is None  # this box carried no key


def test_the_key_a_box_carries_is_what_vml_ssh_uses(ws: Workspace, tmp_path: Path) -> None:
    new_project_with_context("keyed", str(_box(tmp_path, key=BOX_KEY)), None, ctx=ws)
    access = ssh_access("keyed", check=False, ctx=ws)
    assert access.user == VAGRANT_USER and access.identity is not None
    kept = Path(access.identity)
    assert kept.read_bytes() == BOX_KEY and kept.stat().st_mode & 0o777 == 0o600
    assert ["-i", str(kept)] == access.command("keyed")[-5:-3]


def test_no_context_for_a_plain_image_is_refused(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        new_project_with_context("plain", str(_cloud_image(tmp_path)), None, ctx=ws)
    assert ws.projects.names() == []
