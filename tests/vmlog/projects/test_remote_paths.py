"""What reads a project's layers on a remote host goes through its volumes, or is refused before anything is made.

The host is the stand-in of test_remote_layers.py: a directory of volumes only it opens, behind the test driver
taken for a remote host. Growing a disk resizes the live volume there; the window's state sizes and an OVA
export read the volumes; check clones and project archives are refused with the way round; `vml project list`
says the disk use is on the host instead of counting the few local records.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from chain_helpers import write_pattern
from test_remote_layers import DirectoryHost, stand_in_host
from typer.testing import CliRunner

from hypervisors.errors import Unsupported
from vmlog.app import archive, check_run, checks, ova, projects, states, vm_settings, watch
from vmlog.cli import project as project_cli
from vmlog.workspace import Workspace

MIB = 1024 * 1024


@pytest.fixture
def far(ctx: Workspace, base_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DirectoryHost:
    """Project ``far`` on the stand-in host, with one state whose layer holds data."""
    host = stand_in_host(tmp_path, monkeypatch)
    project = projects.new_project("far", str(base_image), ctx=ctx)
    write_pattern(host.dir / project.live["system"], 0x33, 0, 65536)  # what the guest wrote on the host
    states.save_state("far", "first", ctx=ctx)
    return host


def test_a_remote_disk_grows_as_a_volume_of_the_host(ctx: Workspace, far: DirectoryHost) -> None:
    before = vm_settings.vm_settings("far", ctx=ctx)
    assert before.disk_sizes["system"] == 4 * MIB  # the volume's capacity, not a file here
    change = vm_settings.set_vm_settings("far", disk_size="8M", ctx=ctx)
    live = ctx.projects.get("far").load().live["system"]
    assert far.resized == [(live, 8 * MIB)]
    assert change.changed == ["disk system 4 -> 8 MiB"] and change.settings.disk_sizes["system"] == 8 * MIB
    states.save_state("far", "bigger", ctx=ctx)  # the overlay made on it is as large
    assert vm_settings.vm_settings("far", ctx=ctx).disk_sizes["system"] == 8 * MIB


def test_check_clones_of_a_remote_project_are_refused_with_the_way_round(
    ctx: Workspace, far: DirectoryHost
) -> None:
    checks.add_check("hello", "echo hi", checks.expectation(expect="hi"), project="far", ctx=ctx)
    before = far.volume_names()
    with pytest.raises(Unsupported) as refused:
        check_run.run_checks(project="far", ctx=ctx)
    assert "volumes on" in refused.value.message
    assert "vml state export" in (refused.value.fix or "") and "vml check run -p NEW" in (refused.value.fix or "")
    assert far.volume_names() == before
    assert not (ctx.projects.get("far").root / check_run.CLONES_DIR).exists()


def test_a_remote_project_is_not_archived_but_told_to_export_its_states(
    ctx: Workspace, far: DirectoryHost, tmp_path: Path
) -> None:
    out = tmp_path / "far.vmlarchive"
    with pytest.raises(Unsupported) as refused:
        archive.archive_project("far", out, ctx=ctx)
    assert "vml state export REF --project far" in (refused.value.fix or "")
    assert not out.exists()


def test_state_sizes_and_the_listing_of_a_remote_project(ctx: Workspace, far: DirectoryHost) -> None:
    files = ctx.projects.get("far")
    (state,) = files.states().values()
    page = watch.project_page("far", ctx=ctx)
    assert page.layer_sizes[state.id] == far.allocation(state.layers["system"]) > 0
    assert states.layer_sizes("far", ctx=ctx) == page.layer_sizes
    (row,) = projects.list_projects(ctx, with_vm_state=False)
    assert row.disk_bytes is None and row.to_dict()["disk_bytes"] is None
    listing = CliRunner().invoke(project_cli.app, ["list"])
    assert listing.exit_code == 0, listing.output
    assert "on host" in listing.output
    as_json = CliRunner().invoke(project_cli.app, ["list", "--json"])
    assert json.loads(as_json.output)[0]["disk_bytes"] is None


def test_an_ova_of_a_remote_state_is_made_from_its_downloaded_chain(
    ctx: Workspace, far: DirectoryHost, tmp_path: Path
) -> None:
    downloaded: list[str] = []
    fetch = far.download
    far.download = lambda name, target, **kw: (downloaded.append(name), fetch(name, target, **kw))[1]  # type: ignore[method-assign]
    made = ova.export_state_ova("far", "first", tmp_path / "far.ova", ctx=ctx)
    assert downloaded == [ctx.projects.get("far").states()[made.state_id].layers["system"]]
    with tarfile.open(made.path) as tar:
        names = tar.getnames()
    assert names[0].endswith(".ovf") and any(name.endswith(".vmdk") for name in names)
