"""A full disk during `vml state export` and `vml state import` (a small tmpfs): a clear error, nothing left."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmlog.app import exchange, projects
from vmlog.app import states as app_states
from vmlog.errors import VmlogError
from vmlog.logbook import Logbook
from vmlog.paths import VmlogHome
from vmlog.projects.store import ProjectStore
from vmlog.store.images import ImageStore
from vmlog.workspace import Workspace

MIB = 1 << 20


def workspace_at(root: Path) -> Workspace:
    home = VmlogHome(config=root / "config", data=root / "data", cache=root / "cache", runtime=root / "run").ensure()
    images = ImageStore(home.images)
    return Workspace(home, images, ProjectStore(home.projects, lambda sha: images.get(sha).path), Logbook(home.logbook))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable]:
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def sender(tmp_path: Path) -> Workspace:
    """A project whose state s1 holds 3 MiB of random (incompressible) data over a 2 MiB base."""
    ctx = workspace_at(tmp_path / "home-a")
    base = tmp_path / "base.raw"
    base.write_bytes(b"\x11" * (4 * MIB))
    image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, ctx=ctx)
    files = ctx.projects.get("analysis")
    noise = tmp_path / "noise"
    noise.write_bytes(os.urandom(3 * MIB))
    live = files.layers.path(files.load().live["system"])
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {noise} 0 3M", str(live)], check=True,
                   capture_output=True)
    app_states.save_state("analysis", "s1", ctx=ctx)
    return ctx


def test_export_onto_a_full_disk_is_a_clear_error_and_leaves_nothing(sender: Workspace, small_disk) -> None:
    out = small_disk("out", "1M")
    with pytest.raises(VmlogError, match="not enough free disk space") as failed:
        exchange.export_state("analysis", "s1", out, ctx=sender)
    assert "free space on the disk holding" in (failed.value.fix or "")
    assert list(out.iterdir()) == []  # no hidden .x.vmlstate.tmp-*
    assert not list(sender.home.cache.glob("vmlstate-*"))


def test_import_onto_a_full_disk_is_a_clear_error_and_leaves_nothing(sender: Workspace, small_disk,
                                                                     tmp_path: Path) -> None:
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender).path
    receiver = workspace_at(small_disk("home-b", "6M"))
    base = sender.images.list()[0]
    receiver.images.add_file(base.path, name="testbase", version="1", format="raw")
    with pytest.raises(VmlogError, match="not enough free disk space") as failed:
        exchange.import_state(bundle, trust=True, ctx=receiver)
    assert "truncated" not in failed.value.message and "free space" in (failed.value.fix or "")
    assert receiver.projects.names() == []
    assert not list(receiver.home.cache.glob("vmlstate-*"))
    assert [i.name for i in receiver.images.list()] == ["testbase"]
