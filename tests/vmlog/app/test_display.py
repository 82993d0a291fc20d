"""``vml display`` on libvirt's test driver: a stopped VM has no screen, and says so with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hypervisors.base import DisplayEndpoint
from hypervisors.errors import Unsupported
from vmlog.app import display, projects, running
from vmlog.cli import display as display_cli
from vmlog.workspace import Workspace


@pytest.fixture
def ctx(vmlog_home: Path, tmp_path: Path) -> Workspace:
    ctx = Workspace.default()
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project("alpha", str(base), ctx=ctx)
    return ctx


def test_a_stopped_vm_has_no_screen(ctx: Workspace) -> None:
    with pytest.raises(Unsupported, match="not running") as caught:
        display.display("alpha", ctx=ctx)
    assert caught.value.fix == "`vml up alpha` first"


def test_the_test_drivers_running_vm_runs_no_server(ctx: Workspace) -> None:
    running.up("alpha", ctx=ctx)
    with pytest.raises(Unsupported, match="no display server"):
        display.display("alpha", ctx=ctx)


def test_viewer_command_and_the_printed_address(monkeypatch: pytest.MonkeyPatch, ctx: Workspace) -> None:
    end = DisplayEndpoint("vnc", host="127.0.0.1", port=5905)
    monkeypatch.setattr(display.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert display.viewer_command(end, "alpha") == ["/usr/bin/remote-viewer", "--title=alpha", "vnc://127.0.0.1:5905"]
    monkeypatch.setattr(display.shutil, "which", lambda name: None)
    monkeypatch.setattr(display_cli.app_display, "display", lambda project, protocol=None: display.Display(
        "alpha", end, display.viewer_command(end, "alpha")))
    app = typer.Typer()
    app.command("display")(display_cli.display)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["display", "alpha"])
    assert result.exit_code == 0 and "vnc://127.0.0.1:5905" in result.output and "virt-viewer" in result.output
    as_json = CliRunner().invoke(app, ["display", "alpha", "--json"])
    assert '"port": 5905' in as_json.output


SERVERS = [DisplayEndpoint("vnc", host="127.0.0.1", port=5901), DisplayEndpoint("spice", host="127.0.0.1", port=5902)]


@pytest.fixture
def screens(ctx: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """alpha running on the test driver, its domain defined with SPICE; the servers a QEMU would have started."""
    from hypervisors.libvirt import LibvirtHypervisor

    monkeypatch.setattr(LibvirtHypervisor, "offers_spice", True)
    running.up("alpha", ctx=ctx)
    _files, project = projects.load("alpha", ctx)
    with LibvirtHypervisor() as backend:
        defined = backend._conn.lookupByName(project.vm_name).XMLDesc(0)
    assert "<graphics type='spice'" in defined  # the test driver's parser took the definition with both
    monkeypatch.setattr(LibvirtHypervisor, "display_endpoints", lambda self, vm_name: list(SERVERS))
    return ctx


def test_spice_goes_to_the_viewer_when_asked_or_preferred(screens: Workspace, monkeypatch) -> None:
    monkeypatch.setattr(display.shutil, "which", lambda name: f"/usr/bin/{name}")
    shown = display.display("alpha", ctx=screens)
    assert shown.uri == "vnc://127.0.0.1:5901" and shown.protocols == ("vnc", "spice")
    assert shown.viewer_for("spice") == ["/usr/bin/remote-viewer", "--title=alpha (vmlog)", "spice://127.0.0.1:5902"]
    assert display.display("alpha", protocol="spice", ctx=screens).viewer[-1] == "spice://127.0.0.1:5902"
    display.set_preferred_protocol("spice", ctx=screens)
    assert display.preferred_protocol(ctx=screens) == "spice"
    assert display.display("alpha", ctx=screens).uri == "spice://127.0.0.1:5902"
    app = typer.Typer()
    app.command("display")(display_cli.display)
    app.command("other")(lambda: None)
    printed = CliRunner().invoke(app, ["display", "alpha", "--protocol", "vnc", "--prefer", "--print"])
    assert printed.exit_code == 0 and printed.stdout.strip().endswith("vnc://127.0.0.1:5901")
    assert display.preferred_protocol(ctx=screens) == "vnc"


def test_asking_for_spice_where_the_vm_has_none_says_what_it_has(screens: Workspace, monkeypatch) -> None:
    from hypervisors.libvirt import LibvirtHypervisor

    monkeypatch.setattr(LibvirtHypervisor, "display_endpoints", lambda self, vm_name: SERVERS[:1])
    with pytest.raises(Unsupported, match="no SPICE screen") as caught:
        display.display("alpha", protocol="spice", ctx=screens)
    assert caught.value.fix == "`vml display alpha --protocol vnc`"
    display.set_preferred_protocol("spice", ctx=screens)  # a preference falls back to what there is
    assert display.display("alpha", ctx=screens).endpoint.protocol == "vnc"
