"""A full disk during `vml state export`, `vml state import` and the unpacking of a pulled box (a small tmpfs): a
clear error with its fix, nothing partial left."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from hostile_inputs import home_files, qemu_create, run_vml, write_box

from vmlog.app import exchange, projects
from vmlog.app import states as app_states
from vmlog.cli.errors_out import NO_SPACE_EXIT_CODE
from vmlog.errors import VmlogError
from vmlog.paths import home_under
from vmlog.workspace import Workspace

MIB = 1 << 20



@pytest.fixture
def sender(tmp_path: Path) -> Workspace:
    """A project whose state s1 holds 3 MiB of random (incompressible) data over a 2 MiB base."""
    ctx = Workspace.of(home_under(tmp_path / "home-a"))
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
    receiver = Workspace.of(home_under(small_disk("home-b", "6M")))
    base = sender.images.list()[0]
    receiver.images.add_file(base.path, name="testbase", version="1", format="raw")
    with pytest.raises(VmlogError, match="not enough free disk space") as failed:
        exchange.import_state(bundle, trust=True, ctx=receiver)
    assert "truncated" not in failed.value.message and "free space" in (failed.value.fix or "")
    assert receiver.projects.names() == []
    assert not list(receiver.home.cache.glob("vmlstate-*"))
    assert [i.name for i in receiver.images.list()] == ["testbase"]


def test_a_box_whose_disk_the_disk_cannot_hold_is_refused_before_it_is_unpacked(small_disk, tmp_path: Path,
                                                                                served: tuple[Path, str],
                                                                                monkeypatch, capsys) -> None:
    """The 3 MB box fits, its 10 MiB qcow2 (data that compresses 2x, as real disks do) does not: refused from
    the member's declared size before the first write, exit 74 with the fix; neither box nor disk stays."""
    home = small_disk("home", "12M")
    monkeypatch.setenv("VMLOG_HOME", str(home))
    disk = qemu_create(tmp_path / "disk.qcow2", "qcow2", size="16M")
    text = tmp_path / "hex"
    text.write_text(random.Random(5).randbytes(5 * MIB).hex())  # 10 MiB of hex digits
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {text} 0 10M", str(disk)], check=True,
                   capture_output=True)
    meta = json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": 1}).encode()
    root, url = served
    box = write_box(root / "full-disk.box", [("metadata.json", meta, None), ("box.img", disk.read_bytes(), None)])
    image = {"url": f"{url}/{box.name}", "digest": {"sha256": hashlib.sha256(box.read_bytes()).hexdigest()},
             "size": box.stat().st_size, "box_provider": "libvirt"}
    (home / "catalog.json").write_text(json.dumps({"vmlog_catalog": 1, "appliances": [
        {"name": "big", "versions": [{"version": "1", "images": {"box": image}}]}]}))
    (home / "config").mkdir()
    (home / "config" / "catalogs.json").write_text(json.dumps({"catalogs": [
        {"name": "local", "location": str(home / "catalog.json")}]}))
    before = home_files(home)
    code, err = run_vml(monkeypatch, capsys, "appliance", "pull", "big", "--format", "box/libvirt")
    assert code == NO_SPACE_EXIT_CODE, err
    lines = [line for line in err.splitlines() if line.startswith(("error: ", "  fix: "))]
    assert len(lines) == 2 and "no space left" in lines[0] and f"df -h {home}" in lines[1], err  # before a write
    left = {k: v for k, v in home_files(home).items() if k not in before and not k.startswith("cache/downloads/")}
    assert left == {}, left  # no box, no disk, no staging entry in the store
    assert not list(home.rglob("*.part"))


def test_vml_state_export_and_import_onto_a_full_disk_exit_74_with_the_fix(sender: Workspace, small_disk,
                                                                          tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    """What the user sees: `vml` exits 74 (EX_IOERR, a full disk) with one line and the `df -h` fix; the output
    directory and the receiving home hold nothing of the failed command."""
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "home-a"))
    out = small_disk("out-cli", "1M")
    code, err = run_vml(monkeypatch, capsys, "state", "export", "s1", "-p", "analysis", "-o", str(out))
    lines = [line for line in err.splitlines() if line.startswith(("error: ", "  fix: "))]
    assert code == NO_SPACE_EXIT_CODE and len(lines) == 2 and "df -h" in lines[1], err
    assert list(out.iterdir()) == []
    bundle = exchange.export_state("analysis", "s1", tmp_path, ctx=sender).path
    receiver_root = small_disk("home-cli", "6M")
    receiver = Workspace.of(home_under(receiver_root))
    receiver.images.add_file(sender.images.list()[0].path, name="testbase", version="1", format="raw")
    before = home_files(receiver_root)
    monkeypatch.setenv("VMLOG_HOME", str(receiver_root))
    code, err = run_vml(monkeypatch, capsys, "state", "import", str(bundle), "--trust")
    lines = [line for line in err.splitlines() if line.startswith(("error: ", "  fix: "))]
    assert code == NO_SPACE_EXIT_CODE and len(lines) == 2 and "df -h" in lines[1], err
    assert "truncated" not in err
    assert {k for k in home_files(receiver_root) if k not in before} <= {"data/home-id"}
    assert receiver.projects.names() == []
