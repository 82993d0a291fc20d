"""State bundles between libvirt, VirtualBox and VMware projects (simulated VBoxManage and vmrun on PATH).

The VMs stay off: a libvirt project's states are written with qemu-io as a guest would, exported,
imported as a VirtualBox or VMware project (a native snapshot on the shared base), compared with
``qemu-img compare``, exported back from the native snapshot tree and imported on libvirt again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_helpers import write_pattern
from simulators.disk_files import content_format
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors import qemu_img
from vmlog.app import exchange, projects, states
from vmlog.errors import InvalidInput
from vmlog.projects.backends import open_backend
from vmlog.projects.native_reconcile import reconcile
from vmlog.projects.native_tree import NativeTree
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

MiB = 1024 * 1024
BACKENDS = ["virtualbox", "vmware"]


def options(backend: str, sim: Path) -> dict[str, str]:
    return {"machine_folder": str(sim / "machines")} if backend == "virtualbox" else {"vm_root": str(sim / "vms")}


def libvirt_layer(ctx: Workspace, project: str, ref: str) -> Path:
    files = ctx.projects.get(project)
    state = files.states()[ref]
    return files.layers.path(state.layers["system"])


def native_view(files: ProjectFiles, dest: Path) -> Path:
    """What the native VM's system disk shows now, flattened to raw (the simulators' tops are qemu-readable)."""
    project = files.load()
    with open_backend(project) as hv:
        top = Path(hv.disk_tops(project.vm_name)["system"])
    fmt = content_format(top)
    return qemu_img.convert(top, dest, src_format=fmt, dest_format="raw")


@pytest.fixture
def libvirt_states(ctx: Workspace, base_image: Path) -> tuple[str, str]:
    """Project ``src`` on libvirt with states ``s1`` and ``s2`` (s2 on s1), written as a guest would."""
    projects.new_project("src", str(base_image), ctx=ctx)
    files = ctx.projects.get("src")
    live = lambda: files.layers.path(files.load().live["system"])  # noqa: E731
    write_pattern(live(), 0x21, 1 * MiB)
    write_pattern(live(), 0x00, 0, 65536)  # zeroes over base data: must travel as zeroes
    s1 = states.save_state("src", "s1", ctx=ctx)
    write_pattern(live(), 0x22, 2 * MiB)
    write_pattern(live(), 0x11, 65536)  # the base's own bytes rewritten: must not travel
    s2 = states.save_state("src", "s2", ctx=ctx)
    return s1.id, s2.id


@pytest.mark.parametrize("backend", BACKENDS)
def test_libvirt_state_round_trip_through_native_project(
    backend: str, ctx: Workspace, libvirt_states: tuple[str, str], simulated_tools: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    s1, s2 = libvirt_states
    full = exchange.export_state("src", "s1", tmp_path, ctx=ctx)
    incr = exchange.export_state("src", "s2", tmp_path, since="s1", ctx=ctx)

    result = exchange.import_state(full.path, project="dst", trust=True, backend=backend,
                                   backend_options=options(backend, simulated_tools), ctx=ctx)
    assert result.new_project and result.state_id == s1
    files = ctx.projects.get("dst")
    project = files.load()
    assert project.backend == backend and project.current == s1
    state = files.states()[s1]
    assert state.native_id and state.name == "s1"
    assert qemu_img.compare(native_view(files, tmp_path / "v1.raw"), "raw", libvirt_layer(ctx, "src", s1), "qcow2")

    # the incremental bundle lands on s1's snapshot; the hypervisor's tree agrees with vmlog's. The VM's
    # current disk carries the name the hypervisor gives it (VirtualBox: Snapshots/{uuid}.vdi, which
    # qemu-img cannot open by name), and the import must not take it for unsaved changes
    with open_backend(files.load()) as hv:
        live_top = Path(hv.disk_tops(project.vm_name)["system"])
    assert live_top.suffix == (".vdi" if backend == "virtualbox" else ".vmdk")
    result = exchange.import_state(incr.path, trust=True, ctx=ctx)
    assert result.project == "dst" and result.since_id == s1
    states = files.states()
    assert states[s2].parent == s1 and files.load().current == s2
    with open_backend(files.load()) as hv:
        tree = {s.id: s.parent_id for s in hv.snapshot_list(project.vm_name)}
        assert tree[states[s2].native_id] == states[s1].native_id
        assert reconcile(files, hv) == []
        assert not NativeTree(hv).live_has_changes(files)
    assert qemu_img.compare(native_view(files, tmp_path / "v2.raw"), "raw", libvirt_layer(ctx, "src", s2), "qcow2")

    # back from the native tree: a past state (s1, the VM sits on s2) and s2 since s1, imported on libvirt
    back_full = exchange.export_state("dst", s1, tmp_path / "back-s1.vmlstate", ctx=ctx)
    back_incr = exchange.export_state("dst", s2, tmp_path / "back-s2.vmlstate", since=s1, ctx=ctx)
    manifest = json.loads(json.dumps(exchange.inspect_bundle(back_incr.path, ctx=ctx).to_dict()))
    assert manifest["since"]["digest"] == json.loads(json.dumps(exchange.inspect_bundle(incr.path, ctx=ctx).to_dict()))[
        "since"]["digest"], "the since digest must not depend on the backend"
    exchange.import_state(back_full.path, project="again", trust=True, ctx=ctx)
    exchange.import_state(back_incr.path, trust=True, ctx=ctx)
    assert qemu_img.compare(libvirt_layer(ctx, "again", s1), "qcow2", libvirt_layer(ctx, "src", s1), "qcow2")
    assert qemu_img.compare(libvirt_layer(ctx, "again", s2), "qcow2", libvirt_layer(ctx, "src", s2), "qcow2")
    # the bundles hold the change, not the disk: a few 64 KiB clusters on a 4 MiB base
    for bundle in (full, incr, back_full, back_incr):
        assert bundle.size < 64 * 1024, bundle
    disk = json.loads(json.dumps(exchange.inspect_bundle(back_full.path, ctx=ctx).to_dict()))["disks"][0]
    assert disk["changed_bytes"] + disk["referenced_bytes"] == 65536  # repeated blocks travel as references
    for name in ("dst", "again", "src"):
        projects.remove_project(name, ctx=ctx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_import_refusals(
    backend: str, ctx: Workspace, libvirt_states: tuple[str, str], simulated_tools: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    s1, _s2 = libvirt_states
    full = exchange.export_state("src", "s1", tmp_path, ctx=ctx)
    exchange.import_state(full.path, project="dst", trust=True, backend=backend,
                          backend_options=options(backend, simulated_tools), ctx=ctx)
    files = ctx.projects.get("dst")
    with pytest.raises(InvalidInput, match="runs on"):
        exchange.import_state(full.path, project="dst", trust=True, backend="kvm", ctx=ctx)
    # a full bundle of another state (s2) cannot start a second tree in the same VM
    other = exchange.export_state("src", "s2", tmp_path, ctx=ctx)
    with pytest.raises(InvalidInput, match="full bundle starts a new tree"):
        exchange.import_state(other.path, project="dst", trust=True, ctx=ctx)
    # unsaved work in the VM's disk is never overwritten by an import
    incr = exchange.export_state("src", "s2", tmp_path / "incr.vmlstate", since="s1", ctx=ctx)
    project = files.load()
    with open_backend(project) as hv:
        top = Path(hv.disk_tops(project.vm_name)["system"])
    write_pattern(top, 0x55, 0, fmt=content_format(top))
    with pytest.raises(InvalidInput, match="unsaved changes"):
        exchange.import_state(incr.path, trust=True, ctx=ctx)
    assert set(files.states()) == {s1}
    projects.remove_project("dst", ctx=ctx)
    projects.remove_project("src", ctx=ctx)


def test_cli_import_onto_vmware(
    ctx: Workspace, vmlog_home: Path, libvirt_states: tuple[str, str], simulated_tools: Path,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exchange_helpers import vml

    s1, _s2 = libvirt_states
    full = exchange.export_state("src", "s1", tmp_path, ctx=ctx)
    home_dir = tmp_path / "user-home"  # VMware's default VM folder is ~/vmware/vmlog
    home_dir.mkdir()
    monkeypatch.setenv("HOME", str(home_dir))
    done = vml(vmlog_home, "state", "import", str(full.path), "--backend", "vmware", "--project", "mac",
               "--trust", "--json", HOME=str(home_dir))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == s1
    files = ctx.projects.get("mac")
    assert files.load().backend == "vmware"
    assert list(home_dir.glob("vmware/vmlog/*/*.vmsd")), "the VM lives in VMware's folder"
    assert qemu_img.compare(native_view(files, tmp_path / "mac.raw"), "raw", libvirt_layer(ctx, "src", s1), "qcow2")
    refused = vml(vmlog_home, "state", "import", str(full.path), "--backend", "kvm", "--project", "mac",
                  "--trust", HOME=str(home_dir))
    assert refused.returncode != 0 and "runs on vmware" in refused.stderr
    projects.remove_project("mac", ctx=ctx)
    projects.remove_project("src", ctx=ctx)
