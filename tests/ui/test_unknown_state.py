"""A project whose backend cannot be asked: the sidebar and the heading say unknown, and why, without parsing text."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypervisors import registry
from hypervisors.errors import BackendUnavailable
from vmlog.app import projects


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch, vmlog_home: Path, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * (4 << 20))
    projects.new_project("demo", str(base))

    def down(*_args, **_options):
        raise BackendUnavailable("cannot connect to libvirtd", fix="start libvirtd")

    monkeypatch.setattr(registry, "open_backend", down)  # every listing and status opens its backends here
    return "demo"


def test_unknown_vm_state_shows_its_reason(unreachable: str, window, qtbot) -> None:
    controller = window.projects_controller
    controller.refresh()
    qtbot.waitUntil(lambda: controller.view is not None and controller.view.name == unreachable, timeout=20_000)
    summary = window.projects_page.projects.summary(unreachable)
    assert summary.vm_state == "unknown" and summary.vm_reason == "cannot connect to libvirtd"
    assert "cannot connect to libvirtd" in summary.tooltip
    assert controller.view.vm.state is None and not controller.view.busy
    assert "cannot connect to libvirtd" in window.projects_page.subtitle.text()
    buttons = window.projects_page.buttons
    assert buttons["start"].isEnabled() and not buttons["shutdown"].isEnabled()
