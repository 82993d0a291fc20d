"""An archived project comes back in another home with every state's disk identical, each layer stored once."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from archive_fixtures import three_state_project

from hypervisors import qemu_img
from vmlog.app.archive import archive_project, unarchive_project, verify_archive
from vmlog.projects.model import SYSTEM_DISK
from vmlog.workspace import Workspace


def _disk(ctx: Workspace, project: str, state_id: str) -> Path:
    files = ctx.projects.get(project)
    return files.layers.path(files.states()[state_id].layers[SYSTEM_DISK])


def test_archive_unarchives_in_a_new_home_with_every_state_identical(
    vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = three_state_project(vmlog_home, tmp_path)
    out = tmp_path / "analysis.vmlarchive"
    result = archive_project("analysis", out, ctx=made.ctx)
    assert result.states == 3 and result.bases == 1 and out.is_file()
    assert not list(tmp_path.glob(".*partial*"))

    names = [m.name for m in tarfile.open(out)]
    assert names[0] == "manifest.json" and names[-1] == "digests.json"
    layers = [n for n in names if n.startswith("layers/")]
    assert len(layers) == len(set(layers)) == result.layers == 3  # one layer per state; s2 and s3 share s1's
    with tarfile.open(out) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
    s1_layer = manifest["states"][0]["disks"][SYSTEM_DISK]
    children = [layer for layer in manifest["layers"] if layer["backing"] == {"layer": s1_layer}]
    assert len(children) == 2  # s2 and s3 both build on s1's layer, which is stored once
    check = verify_archive(out)
    assert check.sha256 == result.sha256 and len(check.states) == 3

    new_home = tmp_path / "other-home"
    new_home.mkdir()
    monkeypatch.setenv("VMLOG_HOME", str(new_home))
    other = Workspace.default()
    back = unarchive_project(out, ctx=other)
    assert back.project == "analysis" and back.states == 3 and len(back.bases_added) == 1
    for state_id in made.state_ids.values():
        assert qemu_img.compare(_disk(made.ctx, "analysis", state_id), "qcow2", _disk(other, "analysis", state_id),
                                "qcow2")
    files = other.projects.get("analysis")
    assert files.load().current == made.ctx.projects.get("analysis").load().current
    assert json.loads((files.root / "archived-logbook.json").read_text())


def test_a_private_key_in_the_project_stays_out(vmlog_home: Path, tmp_path: Path) -> None:
    made = three_state_project(vmlog_home, tmp_path)
    setup = made.ctx.projects.get("analysis").root / "setup"
    setup.mkdir()
    (setup / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n")
    (setup / "id_ed25519.pub").write_text("ssh-ed25519 AAAA user@host\n")
    out = tmp_path / "keys.vmlarchive"
    result = archive_project("analysis", out, ctx=made.ctx)
    names = [m.name for m in tarfile.open(out)]
    assert "project/setup/id_ed25519.pub" in names and "project/setup/id_ed25519" not in names
    assert any("private key" in note for note in result.notes)
