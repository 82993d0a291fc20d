"""The window follows the desktop's conventions: menu bar, shortcuts, context menus, a narrow minimum width,
project rename and delete, mail settings and stored images from the menus, GUI words in error dialogs,
and a desktop notification when long work ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from ui.dialogs import SaveStateDialog, TextDialog
from ui.failure_dialog import failure_box
from ui.mail_dialog import MailSettingsDialog, RemoveImageDialog
from ui.workers import Failure, Job
from vmlog.app import mail, projects
from vmlog.app import states as app_states
from vmlog.errors import InvalidInput

PROJECT = "lab"


@pytest.fixture
def project(window, qtbot, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project(PROJECT, str(base))
    app_states.save_state(PROJECT, "fresh", message="as set up")
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: len(window.projects_page.tree.model().rows) == 2, timeout=20_000)
    return PROJECT


def idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active and not window.projects_controller._reading, timeout=30_000)


def test_menu_bar_and_about(qtbot, window) -> None:
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "VM", "Help"]
    window.menu_actions["about"].trigger()
    assert "vmlog" in window.about_box.text()
    window.about_box.close()


def test_the_window_can_be_narrow(window) -> None:
    assert window.minimumSizeHint().width() <= 900
    window.resize(900, 700)
    assert window.width() <= 900


def test_shortcuts(qtbot, window, project: str) -> None:
    page, controller = window.projects_page, window.projects_controller
    page.tree.setFocus()
    page.tree.select_state(controller.view.nodes[0].id)
    qtbot.keyClick(page.tree, Qt.Key.Key_Delete)
    box = controller.active_dialog
    assert isinstance(box, QMessageBox) and "Delete the state" in box.text()
    box.reject()
    page.logbook.note.setFocus()
    controller.active_dialog = None
    qtbot.keyClick(page.logbook.note, Qt.Key.Key_Delete)  # Delete in a text field edits text
    assert controller.active_dialog is None
    page.tree.setFocus()
    qtbot.keyClick(page.tree, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert isinstance(controller.active_dialog, SaveStateDialog)
    controller.active_dialog.reject()
    window.activateWindow()  # the dialog had the focus; shortcuts go to the active window
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    page.tree.setFocus()
    with qtbot.waitSignal(controller.refreshed, timeout=20_000):
        qtbot.keyClick(page.tree, Qt.Key.Key_F5)
    qtbot.keyClick(page.tree, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)


def test_context_menus_on_states_and_projects(qtbot, window, project: str) -> None:
    page = window.projects_page
    rect = page.tree.visualRect(page.tree.model().index(0, 1))
    page.tree.customContextMenuRequested.emit(rect.center())
    texts = [a.text() for a in page.last_menu.actions() if not a.isSeparator()]
    assert texts[:4] == ["Restore", "Branch…", "Rename…", "Delete"]
    page.last_menu.close()
    row = page.projects.visualItemRect(page.projects.item(0))
    page.projects.customContextMenuRequested.emit(row.center())
    texts = [a.text() for a in page.last_menu.actions() if not a.isSeparator()]
    assert "Rename project…" in texts and "Delete project…" in texts and "Settings…" in texts
    page.last_menu.close()


def test_rename_and_delete_a_project_from_the_window(qtbot, window, project: str) -> None:
    page, controller = window.projects_page, window.projects_controller
    page.actions_by_key["rename-project"].trigger()
    dialog = controller.active_dialog
    assert isinstance(dialog, TextDialog)
    dialog.edit.setText("lab2")
    dialog.accept()
    idle(qtbot, window)
    qtbot.waitUntil(lambda: page.projects.names() == ["lab2"], timeout=20_000)
    page.actions_by_key["delete-project"].trigger()
    box = controller.active_dialog
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    next(b for b in box.buttons() if b.text() == "Delete project").click()
    idle(qtbot, window)
    qtbot.waitUntil(lambda: page.projects.names() == [], timeout=20_000)


def test_mail_settings_and_image_removal_from_the_menus(qtbot, window) -> None:
    actions = window.window_actions
    window.menu_actions["mail-settings"].trigger()
    dialog = actions.active_dialog
    assert isinstance(dialog, MailSettingsDialog)
    dialog.host.setText("smtp.example.org")
    dialog.user.setText("anna@example.org")
    dialog.accept()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=20_000)
    assert mail.smtp_host() == "smtp.example.org"
    window.menu_actions["remove-image"].trigger()
    qtbot.waitUntil(lambda: isinstance(actions.active_dialog, RemoveImageDialog), timeout=20_000)
    assert not actions.active_dialog.ok.isEnabled()  # nothing stored yet
    actions.active_dialog.reject()


def test_error_dialogs_speak_of_the_window() -> None:
    exc = InvalidInput("the VM of 'lab' is running", fix="`vml down` first, or pass --stop (auto-saves it)")
    box = failure_box(None, "Restoring failed", Failure.from_exception(exc))
    assert "--stop" not in box.informativeText() and "vml" not in box.informativeText()
    mail_fix = InvalidInput("no SMTP server is configured", fix="vml config mail --host smtp.example.org")
    assert "Mail settings" in failure_box(None, "x", Failure.from_exception(mail_fix)).informativeText()


def test_long_work_ends_with_a_desktop_notification(qtbot, window) -> None:
    window.notifier.long_job_s = 0
    job = window.runner.start(Job(lambda progress=None: "ok", title="Exporting fresh", pass_cancel=False))
    qtbot.waitUntil(lambda: job.returned.is_set() and bool(window.notifier.sent), timeout=10_000)
    assert window.notifier.sent == [("Exporting fresh: done", "Finished.")]
