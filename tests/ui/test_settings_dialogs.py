"""The window's Settings dialog changes the VM's resources through ``vml project set``'s use case; Set up asks the
project's name, CPUs and memory and refuses a name that exists (on libvirt's test driver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui.settings_dialogs import SetupDialog, VMSettingsDialog
from vmlog.app import projects, vm_settings
from vmlog.app.types import VMState

PROJECT = "lab"


@pytest.fixture
def project(window, qtbot, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project(PROJECT, str(base))
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: window.projects_page.projects.names() == [PROJECT], timeout=20_000)
    qtbot.waitUntil(lambda: window.projects_page.buttons["settings"].isEnabled(), timeout=20_000)
    return PROJECT


def test_settings_dialog_changes_cpus_memory_and_disk(qtbot, window, project: str) -> None:
    controller = window.projects_controller
    window.projects_page.buttons["settings"].click()
    qtbot.waitUntil(lambda: isinstance(controller.active_dialog, VMSettingsDialog), timeout=20_000)
    dialog = controller.active_dialog
    assert dialog.cpus.value() == 1 and dialog.memory.value() == 512 and dialog.disk_gib.isEnabled()
    assert dialog.values() == {}  # nothing touched, nothing to change
    dialog.cpus.setValue(2)
    dialog.memory.setValue(2048)
    dialog.disk_gib.setValue(2)
    dialog.accept()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=20_000)
    assert window.jobs.last_failure_box is None
    now = vm_settings.vm_settings(project)
    assert (now.cpus, now.memory_mib, now.disk_sizes["system"]) == (2, 2048, 2 << 30)


def test_settings_dialog_adds_and_removes_shares(qtbot, tmp_path: Path) -> None:
    settings = vm_settings.VMSettings("lab", 1, 512, {"system": 1 << 30},
                                      [vm_settings.Share("old", "/srv/old", True)], VMState.RUNNING)
    dialog = VMSettingsDialog(None, settings, running=True)
    qtbot.addWidget(dialog)
    assert not dialog.disk_gib.isEnabled()  # a running machine's disk does not grow
    dialog.add_share(str(tmp_path / "My data"))
    dialog.shares.setCurrentRow(0)
    dialog.shares.takeItem(0)
    assert dialog.values() == {"remove_shares": ["old"], "add_shares": [f"{tmp_path / 'My data'}:My-data"]}


def test_set_up_asks_name_cpus_memory_and_refuses_an_existing_project(qtbot, window, project: str) -> None:
    dialog = window.appliances_controller.ask_set_up(PROJECT)
    assert isinstance(dialog, SetupDialog)
    assert dialog.values() == {"name": f"{PROJECT}-2", "cpus": 1, "memory_mib": 1024}  # a free name proposed
    dialog.name.setText(PROJECT)
    assert not dialog.ok.isEnabled() and "exists" in dialog.problem.text()
    dialog.name.setText("higgs")
    dialog.cpus.setValue(2)
    assert dialog.ok.isEnabled() and dialog.values() == {"name": "higgs", "cpus": 2, "memory_mib": 1024}
    dialog.reject()
