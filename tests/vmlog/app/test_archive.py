"""The archive use cases: a name already taken, Ctrl-C while archiving, a full disk, a backend that cannot take it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "archive"))
from archive_fixtures import three_state_project  # noqa: E402
from simulators.disk_files import content_format  # noqa: E402
from simulators.fixtures import simulated_tools  # noqa: E402, F401 - fixture

from hypervisors import qemu_img  # noqa: E402
from vmlog.app.archive import archive_project, unarchive_project  # noqa: E402
from vmlog.errors import AlreadyExists, VmlogError  # noqa: E402
from vmlog.projects.backends import open_backend  # noqa: E402


@pytest.fixture
def made(vmlog_home: Path, tmp_path: Path):
    return three_state_project(vmlog_home, tmp_path)


def test_an_existing_name_needs_a_new_one(made, tmp_path: Path) -> None:
    out = tmp_path / "a.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    with pytest.raises(AlreadyExists) as error:
        unarchive_project(out, ctx=made.ctx)
    assert "--name" in (error.value.fix or "")
    result = unarchive_project(out, name="analysis-2012", ctx=made.ctx)
    assert result.project == "analysis-2012" and result.bases_added == []  # the base was in the store already
    assert set(made.ctx.projects.get("analysis-2012").states()) == set(made.state_ids.values())
    assert made.ctx.projects.get("analysis-2012").load().vm_name != made.ctx.projects.get("analysis").load().vm_name


def test_ctrl_c_while_archiving_leaves_no_file(made, tmp_path: Path) -> None:
    out = tmp_path / "a.vmlarchive"
    calls = []

    def interrupt(message: str, fraction: float | None) -> None:
        calls.append(message)
        if message.startswith("archiving"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        archive_project("analysis", out, ctx=made.ctx, progress=interrupt)
    assert calls and sorted(p.name for p in tmp_path.iterdir() if "vmlarchive" in p.name) == []
    entries = made.ctx.logbook.entries(project="analysis")
    (row,) = [e for e in entries if e.action == "project archive"]
    assert row.outcome == "cancelled"


def test_too_little_free_space_is_said_before_writing(made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(VmlogError, match="free"):
        archive_project("analysis", tmp_path / "a.vmlarchive", ctx=made.ctx)
    assert not list(tmp_path.glob("*vmlarchive*"))


@pytest.mark.parametrize("backend", ["virtualbox", "vmware"])
def test_unarchived_onto_a_native_snapshot_backend_every_state_matches(
    backend: str, made, tmp_path: Path, simulated_tools: Path  # noqa: F811
) -> None:
    out = tmp_path / "a.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    options = ({"machine_folder": str(simulated_tools / "machines")} if backend == "virtualbox"
               else {"vm_root": str(simulated_tools / "vms")})
    result = unarchive_project(out, name="elsewhere", backend=backend, backend_options=options, ctx=made.ctx)
    assert result.backend == backend and result.states == 3
    assert sorted(made.ctx.projects.names()) == ["analysis", "elsewhere"]  # the kvm stand-in is gone
    files = made.ctx.projects.get("elsewhere")
    project = files.load()
    assert project.backend == backend and set(files.states()) == set(made.state_ids.values())
    assert project.current == made.ctx.projects.get("analysis").load().current
    with open_backend(project) as hv:
        top = Path(hv.disk_tops(project.vm_name)["system"])
    shown = qemu_img.convert(top, tmp_path / "shown.raw", src_format=content_format(top), dest_format="raw")
    original = made.ctx.projects.get("analysis")
    current = original.states()[project.current]
    assert qemu_img.compare(shown, "raw", original.layers.path(current.layers["system"]), "qcow2")


def test_a_failure_after_the_base_entered_the_store_takes_it_out_again(
    made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "a.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "new-home"))
    (tmp_path / "new-home").mkdir()
    from vmlog.app import archive as app_archive
    from vmlog.workspace import Workspace

    other = Workspace.default()

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(app_archive, "attach_layers", broken)
    with pytest.raises(OSError):
        unarchive_project(out, ctx=other)
    assert other.images.list() == [] and other.projects.names() == []
    assert not [p for p in (tmp_path / "new-home").rglob("*.qcow2")]
