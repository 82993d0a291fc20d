"""Drive the real window against the real libvirt backend: save, branch, restore, and check the guest."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ui.bundle_dialogs import ExportDialog, ImportDialog
from ui.dialogs import RestoreDialog, SaveStateDialog
from vmlog.app import projects, running
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm


@pytest.fixture
def vmlog_home(monkeypatch: pytest.MonkeyPatch):
    """A short home: the guest agent's Unix socket path must stay under 108 bytes."""
    root = Path(tempfile.mkdtemp(prefix="vml-ui-", dir="/tmp"))
    monkeypatch.setenv("VMLOG_HOME", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def wait_idle(qtbot, window) -> None:
    controller = window.projects_controller
    qtbot.waitUntil(lambda: not window.runner.active, timeout=600_000)
    with qtbot.waitSignal(controller.refreshed, timeout=120_000):
        controller.refresh()
    box = window.jobs.last_failure_box
    assert box is None, f"a job failed: {box.text()} {box.informativeText()}"


def tree_names(window) -> list[str]:
    model = window.projects_page.tree.model()
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def agent(project: str) -> GuestChannel:
    _files, loaded = projects.load(project)
    channel = GuestChannel(Path(loaded.spec["channel_socket"]))
    channel.wait_ready(300)
    return channel


def save_through_dialog(qtbot, window, name: str, message: str) -> None:
    page = window.projects_page
    page.buttons["save"].click()
    dialog = window.projects_controller.active_dialog
    assert isinstance(dialog, SaveStateDialog)
    dialog.name.setText(name)
    dialog.message.setPlainText(message)
    dialog.accept()
    wait_idle(qtbot, window)


@pytest.fixture
def vm_project(window, qtbot, test_appliance_image: Path):
    projects.new_project("gui-vm", str(test_appliance_image), memory_mib=256)
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: window.projects_page.projects.count() == 1, timeout=60_000)
    wait_idle(qtbot, window)
    yield "gui-vm"
    window.runner.cancel_all()
    window.runner.wait(120_000)
    try:
        running.down("gui-vm", mode="poweroff")
    finally:
        projects.remove_project("gui-vm")


def test_save_branch_restore_through_the_window(qtbot, window, vm_project: str) -> None:
    page = window.projects_page
    assert page.projects.selected_project() == vm_project
    assert tree_names(window) == ["Now"]

    page.buttons["start"].click()
    wait_idle(qtbot, window)
    guest = agent(vm_project)
    guest.check_output("echo one > /data/a.txt && sync")
    save_through_dialog(qtbot, window, "first", "one in a.txt")
    assert tree_names(window) == ["first", "Now"]

    guest.check_output("echo two > /data/a.txt && sync")
    save_through_dialog(qtbot, window, "second", "two in a.txt")
    assert tree_names(window) == ["first", "second", "Now"]
    guest.close()

    # restore "first" while the machine runs: the window asks, the user keeps the running work
    page.tree.select_state(_id(window, "first"))
    page.buttons["restore"].click()
    dialog = window.projects_controller.active_dialog
    assert isinstance(dialog, RestoreDialog)
    assert dialog.keep.text() == "Keep changes and restore"  # it asks before touching unsaved work
    dialog.keep.click()
    wait_idle(qtbot, window)
    names = tree_names(window)
    assert names[:2] == ["first", "Now"], names  # "Now" hangs under the restored state
    assert "second" in names and len(names) == 4  # second, plus the auto-saved running machine
    rows = page.tree.model().rows
    assert rows[1].is_now and rows[0].is_current

    page.buttons["start"].click()
    wait_idle(qtbot, window)
    guest = agent(vm_project)
    assert guest.check_output("cat /data/a.txt").strip() == "one"

    # a new save now branches off "first"
    guest.check_output("echo three > /data/a.txt && sync")
    save_through_dialog(qtbot, window, "branch-b", "three in a.txt")
    guest.close()
    rows = page.tree.model().rows
    by_name = {(r.node.name if r.node else "Now"): r for r in rows}
    assert by_name["branch-b"].depth == by_name["second"].depth == by_name["first"].depth + 1
    assert by_name["branch-b"].lane != by_name["second"].lane  # two branches, two lanes

    # the logbook shows what happened, and takes a note inline
    page.logbook.note.setText("calibration looks right")
    page.logbook.add_button.click()
    wait_idle(qtbot, window)
    shown = page.logbook.visible_rows()
    assert any(row[2].startswith("state restore") and row[3] == "ok" for row in shown)
    assert any(row[4] == "calibration looks right" for row in shown)
    page.logbook.kind.setCurrentText("Notes")
    assert [row[4] for row in page.logbook.visible_rows()] == ["calibration looks right"]


def _id(window, name: str) -> str:
    return next(n.id for n in window.projects_controller.view.nodes if n.name == name)


def drop_files(window, paths: list[Path]) -> None:
    """Drop files on the window the way a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    for event in (
        QDragEnterEvent(QPoint(40, 40), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                        Qt.KeyboardModifier.NoModifier),
        QDropEvent(QPointF(40, 40), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                   Qt.KeyboardModifier.NoModifier),
    ):
        QApplication.sendEvent(window, event)
        assert event.isAccepted()


def test_export_and_import_a_bundle_through_the_window(qtbot, window, vm_project: str, tmp_path: Path) -> None:
    page = window.projects_page
    controller = window.projects_controller
    page.buttons["start"].click()
    wait_idle(qtbot, window)
    guest = agent(vm_project)
    guest.check_output("echo sent-by-anna > /data/shared.txt && sync")
    save_through_dialog(qtbot, window, "shared", "to send")
    guest.close()

    # Export: the dialog offers the base or an earlier state, and the result says whether it fits a mail
    page.tree.select_state(_id(window, "shared"))
    page.buttons["export"].click()
    dialog = controller.active_dialog
    assert isinstance(dialog, ExportDialog)
    assert dialog.since.count() == 1 and dialog.since.currentData() is None  # "shared" is the first state
    out = tmp_path / "shared.vmlstate"
    dialog.path.setText(str(out))
    dialog.accept()
    wait_idle(qtbot, window)
    assert out.is_file() and controller.last_export.path == out
    assert controller.last_export.size == out.stat().st_size
    notice = controller.last_notice
    assert "fits a 25 MB mail attachment" in notice.text() and out.name in notice.text()
    notice.accept()

    # Import: drop the file on the window; it is verified, then the window asks where it goes
    drop_files(window, [out])
    qtbot.waitUntil(lambda: isinstance(controller.active_dialog, ImportDialog), timeout=120_000)
    dialog = controller.active_dialog
    assert "signed by" in dialog.signature.text()
    # the sender's project name is taken here, so a free one is proposed
    assert dialog.new_project.isChecked() and dialog.project_name.text() == f"{vm_project}-2"
    dialog.project_name.setText("gui-copy")
    dialog.accept()
    wait_idle(qtbot, window)
    try:
        assert controller.last_import.project == "gui-copy" and controller.last_import.new_project
        assert page.projects.selected_project() == "gui-copy"
        assert tree_names(window) == ["shared", "Now"]
        assert page.tree.selected_state() == _id(window, "shared")
        names = [page.projects.item(r).text() for r in range(page.projects.count())]
        assert sorted(names) == ["gui-copy", vm_project]

        # the copy boots with the sender's files
        running.down(vm_project, mode="poweroff")
        page.buttons["start"].click()
        wait_idle(qtbot, window)
        copy = agent("gui-copy")
        assert copy.check_output("cat /data/shared.txt").strip() == "sent-by-anna"
        copy.close()
    finally:
        window.runner.wait(120_000)
        if "gui-copy" in Workspace.default().projects.names():
            running.down("gui-copy", mode="poweroff")
            projects.remove_project("gui-copy")
