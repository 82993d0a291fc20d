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
    monkeypatch.setattr(display_cli.app_display, "display",
                        lambda project: display.Display("alpha", end, display.viewer_command(end, "alpha")))
    app = typer.Typer()
    app.command("display")(display_cli.display)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["display", "alpha"])
    assert result.exit_code == 0 and "vnc://127.0.0.1:5905" in result.output and "virt-viewer" in result.output
    as_json = CliRunner().invoke(app, ["display", "alpha", "--json"])
    assert '"port": 5905' in as_json.output
