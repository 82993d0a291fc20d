"""A project on a remote host keeps its layers as volumes there: new, save, restore, rm, with no local layer file.

libvirt's test driver has storage pools but cannot upload to a volume, so the host's storage here is a stand-in
with the same contract (``hypervisors.base.HostStorage``) keeping its volumes in a directory of its own, and the
test driver is told it is remote. The real host is exercised over SSH in tests/vmlog/projects/test_remote_vm.py.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from chain_helpers import write_pattern

from hypervisors import qemu_img
from hypervisors.errors import InvalidState, Unsupported
from hypervisors.libvirt import connection
from hypervisors.libvirt.backend import LibvirtHypervisor
from hypervisors.spec import DiskSpec
from vmlog.app import logbook, projects, running, states
from vmlog.errors import InvalidInput
from vmlog.projects import checkpoints, qcow2_peek, remote_layers
from vmlog.projects.remote_layers import RemoteLayerStore, parse_size, seed_volume_name
from vmlog.projects.remote_seed import upload_seed
from vmlog.workspace import Workspace


class DirectoryHost:
    """A host's pool as a directory of this machine that only this class opens (the test's stand-in host)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "test:///default"  # the address the (stand-in) host was reached through
        self.uploads: list[str] = []
        self.resized: list[tuple[str, int]] = []

    def volume_path(self, name: str) -> str:
        return str(self.dir / name)

    def volume_names(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir())

    def exists(self, name: str) -> bool:
        return (self.dir / name).is_file()

    def backing_path(self, name: str) -> str | None:
        try:
            backing = qcow2_peek.read_header(self.dir / name).backing_name
        except ValueError:
            return None
        return str(self.dir / backing) if backing else None

    def allocation(self, name: str) -> int:
        return (self.dir / name).stat().st_blocks * 512

    def _new(self, name: str) -> Path:
        if self.exists(name):
            raise InvalidState(f"volume {name} exists", backend="kvm")
        return self.dir / name

    def create_overlay(self, name: str, backing: str, *, cluster_size: int | None = None) -> None:
        target = self._new(name)
        fmt = "qcow2" if backing.endswith(".qcow2") else "raw"
        qemu_img.run(["create", "-q", "-f", "qcow2", "-b", str(self.dir / backing), "-F", fmt, str(target)])

    def create_blank(self, name: str, capacity: int, *, cluster_size: int | None = None) -> None:
        qemu_img.create(self._new(name), "qcow2", capacity)

    def upload(self, source: Path, name: str, *, sparse: bool = True, verify: bool = False) -> None:
        shutil.copyfile(source, self._new(name))
        self.uploads.append(name)

    def ensure_copy(self, source: Path, name: str, sha256: str) -> None:
        self.upload(source, name, verify=True)
        assert hashlib.sha256((self.dir / name).read_bytes()).hexdigest() == sha256

    def download(self, name: str, target: Path, *, sparse: bool = True) -> None:
        shutil.copyfile(self.dir / name, target)

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        with open(self.dir / name, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def delete(self, name: str) -> None:
        path = str(self.dir / name)
        if any(self.backing_path(other) == path for other in self.volume_names()):
            raise InvalidState(f"volume {name} is a backing store", backend="kvm")
        (self.dir / name).unlink()

    def capacity(self, name: str) -> int:
        return int(qemu_img.info(self.dir / name, "qcow2")["virtual-size"])

    def resize(self, name: str, capacity: int) -> None:
        self.resized.append((name, capacity))
        qemu_img.run(["resize", "-q", "-f", "qcow2", str(self.dir / name), str(capacity)])


def stand_in_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DirectoryHost:
    """The test driver taken for a remote host whose storage is a :class:`DirectoryHost`."""
    found = DirectoryHost(tmp_path / "host-pool")
    monkeypatch.setattr(connection, "is_remote", lambda uri: True)
    monkeypatch.setattr(LibvirtHypervisor, "host_storage", lambda self, owner: found)
    monkeypatch.setattr(remote_layers, "_open_backends", {})
    return found


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DirectoryHost:
    return stand_in_host(tmp_path, monkeypatch)


def _local_files(ctx: Workspace, name: str) -> list[Path]:
    root = ctx.projects.files(name).root
    return [p for p in root.rglob("*") if p.is_file() and (p.suffix in (".qcow2", ".raw", ".img", ".iso"))]


def test_a_remote_project_keeps_its_layers_on_the_host(ctx: Workspace, base_image: Path, host: DirectoryHost) -> None:
    project = projects.new_project("far", str(base_image), ctx=ctx)
    assert project.remote and project.uri == host.host
    files = ctx.projects.get("far")
    assert isinstance(files.layers, RemoteLayerStore)
    sha = project.base["sha256"]
    assert host.uploads == [f"base-{sha}.raw"]
    live = project.live["system"]
    assert files.vm_spec(project).disks[0].path == host.dir / live  # the domain's disk is the host's path
    assert project.spec["serial_log"] is None and project.spec["channel_socket"] is None
    assert _local_files(ctx, "far") == []
    assert projects.show_project("far", ctx=ctx).to_dict()["uri"] == host.host
    (row,) = projects.list_projects(ctx, with_vm_state=False)
    assert row.uri == host.host and row.to_dict()["uri"] == host.host

    running.up("far", ctx=ctx)
    running.down("far", mode="poweroff", ctx=ctx)
    write_pattern(host.dir / live, 0x22, 0, 65536)  # what the guest wrote on the host
    assert projects.show_project("far", ctx=ctx).unsaved_changes
    first = states.save_state("far", "first", ctx=ctx)
    assert first.layers == {"system": live}
    after = ctx.projects.get("far").load()
    assert host.backing_path(after.live["system"]) == str(host.dir / live)
    assert not projects.show_project("far", ctx=ctx).unsaved_changes
    second = states.save_state("far", "second", ctx=ctx)
    left_live = ctx.projects.get("far").load().live["system"]
    states.restore_state("far", "first", ctx=ctx)
    restored = ctx.projects.get("far").load()
    assert restored.current == first.id
    assert host.backing_path(restored.live["system"]) == str(host.dir / live)
    assert left_live not in host.volume_names()  # the live layer it left went
    assert second.layers["system"] in host.volume_names()
    assert _local_files(ctx, "far") == []

    states.remove_state("far", "second", ctx=ctx)  # a leaf: its volume goes
    assert second.layers["system"] not in host.volume_names()
    with pytest.raises(Unsupported) as refused:
        states.remove_state("far", "first", ctx=ctx)  # a merge into its child needs a rebase on the host
    assert "vml state export" in (refused.value.fix or "")

    rows = [row for row in logbook.history("far", ctx=ctx) if hasattr(row, "vm_host")]
    assert len(rows) >= 6 and {row.vm_host for row in rows} == {host.host}
    projects.remove_project("far", ctx=ctx)
    assert host.volume_names() == []


def test_a_second_project_shares_the_base_and_rm_keeps_it_for_the_other(
    ctx: Workspace, base_image: Path, host: DirectoryHost
) -> None:
    projects.new_project("one", str(base_image), ctx=ctx)
    projects.new_project("two", str(base_image), ctx=ctx)
    assert len(host.uploads) == 1  # once per host
    projects.remove_project("one", ctx=ctx)
    left = host.volume_names()
    assert len(left) == 2 and any(name.startswith("base-") for name in left)
    projects.remove_project("two", ctx=ctx)
    assert host.volume_names() == []


def test_a_memory_save_on_a_remote_host_is_refused_whole(
    ctx: Workspace, base_image: Path, host: DirectoryHost
) -> None:
    projects.new_project("far", str(base_image), ctx=ctx)
    running.up("far", ctx=ctx)
    before = host.volume_names()
    with pytest.raises(Unsupported) as refused:
        states.save_state("far", "x", memory=True, ctx=ctx)
    assert "vml down far --save" in (refused.value.fix or "")
    assert host.volume_names() == before
    assert ctx.projects.get("far").states() == {}


def test_a_remote_chain_is_refused_before_libvirt_would_refuse_it(
    ctx: Workspace, base_image: Path, host: DirectoryHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects.new_project("far", str(base_image), ctx=ctx)
    states.save_state("far", "one", ctx=ctx)
    monkeypatch.setattr(checkpoints, "RUNNING_CHAIN_LIMIT", 4)  # base, one, live: a fourth volume is the limit
    states.save_state("far", "two", ctx=ctx)
    with pytest.raises(InvalidInput) as refused:
        states.save_state("far", "three", ctx=ctx)
    assert "vml state export -p far" in (refused.value.fix or "")


def test_local_projects_and_old_records_have_no_host(ctx: Workspace, base_image: Path) -> None:
    project = projects.new_project("near", str(base_image), ctx=ctx)
    assert not project.remote and project.uri is None
    record = project.to_dict()
    assert "storage_owner" not in record
    assert ctx.projects.get("near").layers.remote is False
    (row,) = logbook.history("near", ctx=ctx)
    assert row.vm_host is None and row.to_dict()["vm_host"] is None


def test_sizes_read_as_qemu_img_writes_them() -> None:
    assert parse_size("20G") == 20 * 1024**3
    assert parse_size("512M") == 512 * 1024**2
    assert parse_size(4096) == 4096


def test_a_remote_projects_seed_is_a_volume_of_the_host(
    ctx: Workspace, base_image: Path, host: DirectoryHost, tmp_path: Path
) -> None:
    seed = tmp_path / "seed.iso"
    seed.write_bytes(b"CD001" * 100)
    drive = DiskSpec(path=seed, format="raw", device="cdrom", readonly=True, label="seed")
    project = projects.new_project("far", str(base_image), extra_disks=(drive,), ctx=ctx)
    files = ctx.projects.get("far")
    assert upload_seed(files, seed)
    assert not upload_seed(files, seed, only_missing=True)  # already there
    volume = seed_volume_name(project)
    (disk,) = [d for d in files.vm_spec(files.load()).disks if d.label == "seed"]
    assert disk.path == host.dir / volume and (host.dir / volume).read_bytes() == seed.read_bytes()
    projects.remove_project("far", ctx=ctx)
    assert host.volume_names() == []
