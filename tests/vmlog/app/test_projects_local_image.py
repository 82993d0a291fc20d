"""`vml project new NAME FILE`: the base's format comes from the file's bytes, not its name."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vmlog.app import projects
from vmlog.workspace import Workspace


def test_a_qcow2_named_img_becomes_a_qcow2_base(vmlog_home: Path, tmp_path: Path) -> None:
    """An Ubuntu cloud image is ``*.img`` but qcow2: taken as raw, its guest would see qcow2 bytes."""
    cloud_image = tmp_path / "jammy-server-cloudimg-amd64.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(cloud_image), "16M"], check=True)
    ctx = Workspace.default()
    projects.new_project("cloud", str(cloud_image), ctx=ctx)
    base = ctx.images.list()
    assert [image.format for image in base] == ["qcow2"]
    project = ctx.projects.get("cloud").load()
    assert project.roots["system"].format == "qcow2"


def test_a_raw_file_named_qcow2_stays_raw(vmlog_home: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"\1" * (1 << 20))
    ctx = Workspace.default()
    projects.new_project("rawbase", str(disk), ctx=ctx)
    assert [image.format for image in ctx.images.list()] == ["raw"]
