"""A project's VM settings changed after creation, on libvirt's test driver: spec, next boot, logbook, states."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest
import typer
from typer.testing import CliRunner

from vmlog.app import logbook, projects, running, states, vm_settings
from vmlog.cli import vm_settings as vm_settings_cli
from vmlog.errors import InvalidInput
from vmlog.workspace import Workspace


@pytest.fixture
def ctx(vmlog_home: Path, tmp_path: Path) -> Workspace:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 4 * 1024 * 1024)
    projects.new_project("alpha", str(base), ctx=ctx)
    return ctx


def test_settings_change_the_next_boot_the_logbook_and_later_states(ctx: Workspace, tmp_path: Path) -> None:
    before = vm_settings.vm_settings("alpha", ctx=ctx)
    assert (before.cpus, before.memory_mib, before.shares) == (1, 512, [])
    assert before.disk_sizes["system"] == 4 * 1024 * 1024
    change = vm_settings.set_vm_settings("alpha", cpus=2, memory_mib=1024, disk_size="8M", ctx=ctx)
    assert change.changed == ["cpus 1 -> 2", "memory 512 -> 1024 MiB", "disk system 4 -> 8 MiB"]
    after = change.settings
    assert (after.cpus, after.memory_mib, after.disk_sizes["system"]) == (2, 1024, 8 * 1024 * 1024)
    row = next(e for e in logbook.history("alpha", ctx=ctx) if e.kind == "operation" and e.action == "project set")
    assert row.outcome == "ok" and "cpus 1 -> 2" in (row.message or "")
    # the next boot defines the VM from the new spec
    running.up("alpha", ctx=ctx)
    project = ctx.projects.get("alpha").load()
    conn = libvirt.open("test:///default")
    try:
        xml = conn.lookupByName(project.vm_name).XMLDesc(0)
    finally:
        conn.close()
    assert ">2</vcpu>" in xml and "1048576" in xml
    # a running VM: CPUs and memory wait for the next boot; a disk does not grow under it
    later = vm_settings.set_vm_settings("alpha", cpus=4, ctx=ctx)
    assert later.next_boot == ["cpus 2 -> 4"]
    with pytest.raises(InvalidInput, match="off"):
        vm_settings.set_vm_settings("alpha", disk_size="16M", ctx=ctx)
    # a state saved afterwards records the settings
    running.down("alpha", mode="poweroff", ctx=ctx)
    saved = states.save_state("alpha", "bigger", ctx=ctx)
    assert saved.spec["cpus"] == 4 and saved.spec["memory_mib"] == 1024


@pytest.fixture
def with_shared_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvirt's test driver has no filesystems; the spec side of shares is the same on every backend."""
    from hypervisors.base import Capability
    from hypervisors.libvirt.backend import LibvirtHypervisor

    caps = LibvirtHypervisor.capabilities.fget
    more = property(lambda self: caps(self) | Capability.SHARED_FOLDERS)
    monkeypatch.setattr(LibvirtHypervisor, "capabilities", more)


def test_shared_folders_are_added_and_removed(ctx: Workspace, tmp_path: Path, with_shared_folders: None) -> None:
    data = tmp_path / "data"
    data.mkdir()
    change = vm_settings.set_vm_settings("alpha", add_shares=[f"{data}:data", f"{tmp_path}:home:rw"], ctx=ctx)
    assert change.changed == [f"shared {data} as data", f"shared {tmp_path} as home"]
    assert [(s.tag, s.readonly) for s in change.settings.shares] == [("data", True), ("home", False)]
    with pytest.raises(InvalidInput, match="exists"):
        vm_settings.set_vm_settings("alpha", add_shares=[f"{data}:data"], ctx=ctx)
    gone = vm_settings.set_vm_settings("alpha", remove_shares=["data"], ctx=ctx)
    assert [s.tag for s in gone.settings.shares] == ["home"]


def test_wrong_settings_are_refused(ctx: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        vm_settings.set_vm_settings("alpha", disk_size="1M", ctx=ctx)  # shrinking
    with pytest.raises(InvalidInput):
        vm_settings.set_vm_settings("alpha", add_shares=[f"{tmp_path / 'missing'}:x"], ctx=ctx)
    with pytest.raises(InvalidInput):
        vm_settings.set_vm_settings("alpha", remove_shares=["nothing"], ctx=ctx)
    with pytest.raises(InvalidInput):
        vm_settings.set_vm_settings("alpha", memory_mib=8, ctx=ctx)
    assert vm_settings.vm_settings("alpha", ctx=ctx).memory_mib == 512


def test_vml_project_set(ctx: Workspace, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("set")(vm_settings_cli.set_settings)
    app.command("other")(lambda: None)  # a group, as under ``vml project``
    runner = CliRunner()
    result = runner.invoke(app, ["set", "alpha", "--cpus", "3", "--memory", "1G"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["set", "alpha"])
    assert "cpus      3" in shown.output and "memory    1024 MiB" in shown.output
    as_json = runner.invoke(app, ["set", "alpha", "--json"])
    assert '"cpus": 3' in as_json.output
