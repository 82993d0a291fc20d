"""The sidebar follows a project's VM from libvirt's state events, with the polling timer off.

The VM is started by ``vml up`` in another process and powered off from another thread, as a user
at a terminal would while the window is open; nothing in the window asks for a refresh.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from vmlog.app import projects, running
from vmlog.app.types import VMState

pytestmark = pytest.mark.vm
PROJECT = "gui-events"


@pytest.fixture
def vmlog_home(monkeypatch: pytest.MonkeyPatch):
    """A short home: the guest agent's Unix socket path must stay under 108 bytes."""
    root = Path(tempfile.mkdtemp(prefix="vml-ev-", dir="/tmp"))
    monkeypatch.setenv("VMLOG_HOME", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def window(qtbot, vmlog_home: Path):
    """The real window and controllers, without the polling timer."""
    from ui.app import make_application
    from ui.controllers import wire
    from ui.main_window import MainWindow

    make_application([])
    win = MainWindow()
    wire(win, refresh_ms=0)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.runner.cancel_all()
    win.runner.wait(120_000)


@pytest.fixture
def project(window, qtbot, test_appliance_image: Path):
    projects.new_project(PROJECT, str(test_appliance_image), memory_mib=256)
    controller = window.projects_controller
    controller.refresh()  # the project's creation is not a VM state change: read it once
    qtbot.waitUntil(lambda: sidebar_state(window) == "stopped", timeout=60_000)
    yield PROJECT
    window.runner.wait(120_000)
    try:
        running.down(PROJECT, mode="poweroff")
    finally:
        projects.remove_project(PROJECT)


def sidebar_state(window) -> str | None:
    summary = window.projects_page.projects.summary(PROJECT)
    return summary.vm_state if summary else None


def test_sidebar_follows_the_vm_without_polling(qtbot, window, project: str) -> None:
    controller = window.projects_controller
    assert not controller.timer.isActive()
    qtbot.waitUntil(lambda: controller.events.covered, timeout=60_000)  # subscribed to libvirt's events
    heard: list[str] = []
    controller.project_refreshed.connect(heard.append)

    vml = Path(sys.executable).with_name("vml")  # the venv's console script, whether or not it is on PATH
    assert vml.is_file(), "the vml command is installed with the project"
    cli = subprocess.Popen([str(vml), "up", project], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    qtbot.waitUntil(lambda: cli.poll() is not None, timeout=300_000)
    assert cli.returncode == 0, cli.stdout.read() if cli.stdout else ""
    cli.stdout and cli.stdout.close()
    qtbot.waitUntil(lambda: sidebar_state(window) == "running", timeout=120_000)
    qtbot.waitUntil(lambda: controller.view is not None and controller.view.vm.state == VMState.RUNNING,
                    timeout=60_000)
    assert window.projects_page.buttons["shutdown"].isEnabled()  # the page, not only the row, followed

    failures: list[BaseException] = []

    def power_off() -> None:
        try:
            running.down(project, mode="poweroff")
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    worker = threading.Thread(target=power_off)
    worker.start()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=120_000)
    assert not failures, failures
    qtbot.waitUntil(lambda: sidebar_state(window) == "stopped", timeout=120_000)
    assert PROJECT in heard
    assert not controller.timer.isActive()
    assert window.projects_page.buttons["start"].isEnabled()
