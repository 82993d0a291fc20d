"""States of VirtualBox and VMware projects as native snapshots, against the VBoxManage and vmrun simulators.

The VM stays off: the tests write into the disk the hypervisor currently writes (its differencing
disk, as the backend reports it) the way a guest would, and read what a state restores by
flattening that disk's chain.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from simulators.disk_files import content_format
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture
from typer.testing import CliRunner

from hypervisors import qemu_img
from hypervisors.base import Hypervisor
from vmlog.app import doctor, projects, running
from vmlog.app import states as app_states
from vmlog.errors import InvalidInput
from vmlog.projects import native_journal
from vmlog.projects.backends import open_backend
from vmlog.projects.model import State
from vmlog.projects.native_tree import NativeTree
from vmlog.projects.repair import check_project
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace

MiB = 1024 * 1024
BACKENDS = ["virtualbox", "vmware"]


def options(backend: str, sim: Path) -> dict[str, str]:
    return {"machine_folder": str(sim / "machines")} if backend == "virtualbox" else {"vm_root": str(sim / "vms")}


@pytest.fixture(params=BACKENDS)
def native(request, ctx: Workspace, base_image: Path, simulated_tools: Path):  # noqa: F811
    """(backend name, project files) of a project ``p`` on the simulated backend."""
    backend = request.param
    projects.new_project("p", str(base_image), backend=backend, backend_options=options(backend, simulated_tools),
                        memory_mib=256, ctx=ctx)
    yield backend, ctx.projects.get("p")
    projects.remove_project("p", ctx=ctx)


def hv_of(files: ProjectFiles) -> Hypervisor:
    return open_backend(files.load())


def top(files: ProjectFiles) -> Path:
    """The file the hypervisor writes the system disk into now (the VM is defined if it is not yet)."""
    with hv_of(files) as hv:
        NativeTree(hv).ensure_vm(files)
        return Path(hv.disk_tops(files.load().vm_name)["system"])


def guest_write(files: ProjectFiles, pattern: int, offset: int) -> None:
    path = top(files)
    fmt = content_format(path)
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P {pattern} {offset} 65536", str(path)],
                   check=True, capture_output=True)


def guest_view(files: ProjectFiles, tmp_path: Path) -> dict[int, int]:
    """The first byte of every MiB of the disk as the guest sees it now."""
    path = top(files)
    flat = qemu_img.convert(path, tmp_path / "view.raw", src_format=content_format(path),
                            dest_format="raw")
    data = flat.read_bytes()
    flat.unlink()
    return {offset: data[offset] for offset in range(0, len(data), MiB)}


def driver(files: ProjectFiles) -> NativeTree:
    return NativeTree(hv_of(files))


def native_tree_of(files: ProjectFiles) -> dict[str, str | None]:
    """native id -> native parent id, as the hypervisor reports its tree."""
    with hv_of(files) as hv:
        return {s.id: s.parent_id for s in hv.snapshot_list(files.load().vm_name)}


def by_name(files: ProjectFiles, name: str) -> State:
    return next(s for s in files.states().values() if s.name == name)


def test_project_shares_one_converted_base(native, ctx: Workspace, base_image: Path) -> None:
    backend, files = native
    project = files.load()
    fmt = "vdi" if backend == "virtualbox" else "vmdk"
    shared = ctx.images.converted(project.roots["system"].image_sha256, fmt)
    assert project.live == {} and project.spec["disks"][0]["path"] == str(shared)
    projects.new_project("q", str(base_image), backend=backend, backend_options=project.backend_options, ctx=ctx)
    try:
        assert ctx.projects.get("q").load().spec["disks"][0]["path"] == str(shared)
        before = qemu_img.run(["info", "--output=json", "-f", fmt, str(shared)])
        guest_write(files, 0x21, 0)
        guest_write(ctx.projects.get("q"), 0x22, 0)
        assert top(files) != top(ctx.projects.get("q"))
        assert qemu_img.run(["info", "--output=json", "-f", fmt, str(shared)]) == before
        assert qemu_img.compare(shared, fmt, base_image, "raw"), "the shared base must never be written"
    finally:
        projects.remove_project("q", ctx=ctx)
    assert len(ctx.images.refs(project.roots["system"].image_sha256)) == 1


def test_save_restore_branch_remove(native, ctx: Workspace, tmp_path: Path) -> None:
    backend, files = native
    base_view = guest_view(files, tmp_path)
    expected: dict[str, dict[int, int]] = {}
    assert not driver(files).live_has_changes(files)
    for i in (1, 2, 3):
        guest_write(files, 0x30 + i, i * MiB)
        assert driver(files).live_has_changes(files)
        assert running.status("p", ctx=ctx)["unsaved_changes"] is True  # what `vml status` shows
        state = app_states.save_state("p", f"s{i}", ctx=ctx)
        assert not driver(files).live_has_changes(files)
        assert running.status("p", ctx=ctx)["unsaved_changes"] is False
        assert state.native_id in native_tree_of(files)
        expected[state.id] = guest_view(files, tmp_path)
        assert expected[state.id][i * MiB] == 0x30 + i
    guest_write(files, 0x77, 0)  # unsaved work

    result = app_states.restore_state("p", "s1", ctx=ctx)
    assert result["autosaved"], "unsaved work must be auto-saved, not lost"
    expected[result["autosaved"]] = {**expected[by_name(files, "s3").id], 0: 0x77}
    assert guest_view(files, tmp_path) == expected[by_name(files, "s1").id]
    assert files.load().current == by_name(files, "s1").id

    guest_write(files, 0x55, 3 * MiB)  # a branch from s1
    branch = app_states.save_state("p", "b1", ctx=ctx)
    expected[branch.id] = guest_view(files, tmp_path)
    states = files.states()
    s1 = by_name(files, "s1")
    assert branch.parent == s1.id and {k.name for k in states.values() if k.parent == s1.id} == {"s2", "b1"}
    tree = native_tree_of(files)
    for state in states.values():  # vmlog's tree mirrors the hypervisor's
        assert tree[state.native_id] == (states[state.parent].native_id if state.parent else None)
    assert "|/" in "\n".join(app_states.state_tree("p", ctx=ctx))

    for state_id, view in expected.items():
        app_states.restore_state("p", state_id, discard=True, ctx=ctx)
        assert guest_view(files, tmp_path) == view, states[state_id].label()
        assert files.load().current == state_id

    if backend == "virtualbox":  # s1's disk has two children (s2, b1): VirtualBox cannot merge it
        with pytest.raises(InvalidInput) as caught:
            app_states.remove_state("p", "s1", ctx=ctx)
        assert "2 children" in caught.value.message and caught.value.fix
        assert s1.native_id in native_tree_of(files) and s1.id in files.states()

    s3 = by_name(files, "s3")
    app_states.remove_state("p", "s2", ctx=ctx)  # a middle state: its snapshot merges into s3's
    states = files.states()
    assert "s2" not in {s.name for s in states.values()} and states[s3.id].parent == s1.id
    assert native_tree_of(files)[s3.native_id] == s1.native_id
    app_states.restore_state("p", "s3", discard=True, ctx=ctx)
    assert guest_view(files, tmp_path) == expected[s3.id]

    if backend == "virtualbox":  # s3 has the auto-saved state and the live disk as children
        with pytest.raises(InvalidInput):
            app_states.remove_state("p", "s3", ctx=ctx)
    app_states.remove_state("p", result["autosaved"], ctx=ctx)  # a leaf
    assert result["autosaved"] not in files.states() and files.load().current == s3.id
    app_states.remove_state("p", "s3", ctx=ctx)  # the current state: the live disk keeps its content
    assert files.load().current == s1.id
    assert guest_view(files, tmp_path) == expected[s3.id]
    assert s3.native_id not in native_tree_of(files)
    with hv_of(files) as hv:
        assert check_project(files, backend=hv) == []
    assert base_view[0] == 0x11  # the base pattern of the fixture image


def test_repair_adopts_and_finishes_and_reports(native, ctx: Workspace) -> None:
    backend, files = native
    one = app_states.save_state("p", "one", ctx=ctx)
    vm = files.load().vm_name
    with hv_of(files) as hv:
        # a snapshot taken behind vmlog's back (the hypervisor's own GUI): adopted, never deleted
        stray = hv.snapshot_create(vm, "made-in-gui")
        findings = check_project(files, backend=hv)
        assert [f.problem for f in findings] == [f"{backend} snapshot 'made-in-gui' ({stray}) has no state record"]
        check_project(files, repair=True, backend=hv)
        adopted = next(s for s in files.states().values() if s.native_id == stray)
        assert adopted.parent == one.id and adopted.name == "made-in-gui"
        assert check_project(files, backend=hv) == []

        # a save killed after the snapshot existed, before its record: repair rolls it forward
        files.write(files.load().__class__.from_dict({**files.load().to_dict(), "current": adopted.id}))
        native_journal.begin(files, op="save", state="f" * 16, parent=adopted.id, name="killed", message="m",
                           author="u@h", created=1.0)
        taken = hv.snapshot_create(vm, "killed")
        assert check_project(files) and not check_project(files)[0].repaired  # no backend: reported only
        problems = [f.problem for f in check_project(files, backend=hv)]
        assert problems == ["save of state ffffffff was interrupted after the snapshot was taken"]
        check_project(files, repair=True, backend=hv)
        killed = files.states()["f" * 16]
        assert killed.native_id == taken and killed.parent == adopted.id and files.load().current == killed.id
        assert not native_journal.journal_path(files).exists()

        # a save killed before the snapshot: forgotten
        native_journal.begin(files, op="save", state="e" * 16, parent=killed.id, name=None, message="", author="",
                           created=1.0)
        check_project(files, repair=True, backend=hv)
        assert "e" * 16 not in files.states() and files.load().current == killed.id

        # a record whose snapshot is gone: reported, and `vml state rm` forgets it
        hv.snapshot_delete(vm, one.native_id)
        findings = check_project(files, repair=True, backend=hv)
    assert any("snapshot" in f.problem and "is gone" in f.problem and not f.repaired for f in findings)
    app_states.remove_state("p", one.id, ctx=ctx)
    with hv_of(files) as hv:
        assert check_project(files, backend=hv) == []
    assert files.states()[adopted.id].parent is None


def test_doctor_checks_native_projects(native, ctx: Workspace) -> None:
    _backend, files = native
    app_states.save_state("p", "one", ctx=ctx)
    assert doctor.check_projects(ctx=ctx).ok
    with hv_of(files) as hv:
        hv.snapshot_create(files.load().vm_name, "stray")
    report = doctor.check_projects(ctx=ctx)
    assert not report.ok and "has no state record" in report.findings[0].problem
    assert doctor.check_projects(repair=True, ctx=ctx).ok and doctor.check_projects(ctx=ctx).findings == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_project_new_on_native_backend(
    backend: str, vmlog_home: Path, tmp_path: Path, simulated_tools: Path, monkeypatch  # noqa: F811
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # the backends' default VM folders live in $HOME

    def vml(*args: str) -> str:
        result = CliRunner().invoke(service_cli_app(), list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    image = tmp_path / "appliance.img"
    image.write_bytes(b"\0" * (4 << 20))
    vml("project", "new", "demo", str(image), "--backend", backend, "--memory", "256")
    (row,) = json.loads(vml("project", "list", "--json"))
    assert row["backend"] == backend and row["vm"] == "stopped"
    vml("state", "save", "first")
    vml("state", "save", "second")
    vml("state", "restore", "first")
    vml("state", "save", "branch")
    states = json.loads(vml("state", "list", "--json"))
    assert [s["name"] for s in states] == ["first", "second", "branch"]
    assert "|/" in vml("state", "tree")
    vml("state", "rm", "second")
    assert [s["name"] for s in json.loads(vml("state", "list", "--json"))] == ["first", "branch"]
    ctx = Workspace.default()
    project = ctx.projects.get("demo").load()
    with open_backend(project) as hv:
        names = {s.name for s in hv.snapshot_list(project.vm_name)}
    assert names == {"first", "branch"}
    vml("project", "rm", "demo", "--yes")
    with open_backend(project) as hv:
        assert not hv.exists(project.vm_name)


def service_cli_app():
    from vmlog.cli.main import app

    return app


def test_repair_finishes_interrupted_restore_and_remove(native, ctx: Workspace, tmp_path: Path) -> None:
    _backend, files = native
    guest_write(files, 0x31, MiB)
    one = app_states.save_state("p", "one", ctx=ctx)
    one_view = guest_view(files, tmp_path)
    guest_write(files, 0x32, 2 * MiB)
    two = app_states.save_state("p", "two", ctx=ctx)
    vm = files.load().vm_name
    with hv_of(files) as hv:
        # killed after the native restore, before project.json: repair restores again and records it
        native_journal.begin(files, op="restore", state=one.id)
        hv.snapshot_restore(vm, one.native_id)
        assert files.load().current == two.id
        findings = check_project(files, repair=True, backend=hv)
        assert [(f.problem, f.repaired) for f in findings] == [
            (f"restore of state {one.label()} was interrupted", True)
        ]
        assert files.load().current == one.id and guest_view(files, tmp_path) == one_view
        assert not native_journal.journal_path(files).exists()

        # killed after the native delete, before the records changed: repair finishes the removal
        hv.snapshot_delete(vm, two.native_id)  # a leaf VirtualBox can delete
        native_journal.begin(files, op="remove", state=two.id)
        check_project(files, repair=True, backend=hv)
        assert two.id not in files.states() and one.id in files.states()

        # killed before the native delete: the state stays
        native_journal.begin(files, op="remove", state=one.id)
        check_project(files, repair=True, backend=hv)
        assert one.id in files.states() and check_project(files, backend=hv) == []


def test_rename_refused_and_scratch_disk_kept_per_state(
    native, ctx: Workspace, base_image: Path, tmp_path: Path
) -> None:
    backend, files = native
    app_states.save_state("p", "one", ctx=ctx)
    with pytest.raises(InvalidInput) as caught:  # a rename deletes the VM, and its snapshots with it
        projects.rename_project("p", "renamed", ctx=ctx)
    assert "rename would delete" in caught.value.message and ctx.projects.names() == ["p"]

    opts = files.load().backend_options
    for name in ("s", "t"):  # two blank scratch disks of one size: VirtualBox must tell them apart
        projects.new_project(name, str(base_image), backend=backend, scratch_size="1M", backend_options=opts,
                            ctx=ctx)
    try:
        scratch = ctx.projects.get("s")
        project = scratch.load()
        disk = next(d for d in project.spec["disks"] if d["label"] == "scratch")
        assert Path(disk["path"]) == scratch.layers.path(project.roots["scratch"].file)
        assert Path(disk["path"]).is_file() and disk["format"] == project.roots["scratch"].format
        with hv_of(scratch) as hv:
            NativeTree(hv).ensure_vm(scratch)
            NativeTree(hv).ensure_vm(ctx.projects.get("t"))  # registers the second blank disk too
            tops = hv.disk_tops(project.vm_name)
        fmt = content_format(tops["scratch"])

        def write(pattern: int) -> None:
            subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P {pattern} 0 4096", str(tops["scratch"])],
                           check=True, capture_output=True)

        def first_byte() -> int:
            with hv_of(scratch) as hv:
                path = hv.disk_tops(project.vm_name)["scratch"]
            flat = qemu_img.convert(path, tmp_path / "scratch.raw", src_format=fmt, dest_format="raw")
            value = flat.read_bytes()[0]
            flat.unlink()
            return value

        write(0x61)
        first = app_states.save_state("s", "first", ctx=ctx)
        with hv_of(scratch) as hv:
            tops = hv.disk_tops(project.vm_name)
        write(0x62)
        app_states.save_state("s", "second", ctx=ctx)
        app_states.restore_state("s", first.id, ctx=ctx)
        assert first_byte() == 0x61
        app_states.restore_state("s", "second", ctx=ctx)
        assert first_byte() == 0x62
        root = scratch.layers.path(project.roots["scratch"].file)
        assert qemu_img.run(["map", "--output=json", "-f", project.roots["scratch"].format, str(root)]).count(
            '"data": true'
        ) == 0, "the scratch root must stay blank: the hypervisor writes its own differencing disks"
        with hv_of(scratch) as hv:
            assert check_project(scratch, backend=hv) == []
    finally:
        projects.remove_project("s", ctx=ctx)
        projects.remove_project("t", ctx=ctx)
