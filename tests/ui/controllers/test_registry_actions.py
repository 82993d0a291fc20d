"""Push and pull reach the window: Export's "Push to registry…", the state menu, Pull beside Import.

The registry use cases are replaced by fakes that record their arguments (the registry itself is tested
in tests/vmlog/registry); a refused login shows its fix in the failure box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from ui.bundle_dialogs import PUSH_INSTEAD, ExportDialog, PullDialog, PushDialog
from vmlog.app import exchange, projects, registry
from vmlog.app import states as app_states
from vmlog.registry.errors import RegistryAuthError

PROJECT = "lab"
REFERENCE = "registry.lab:5000/group/states:fresh"


def tree_names(window) -> list[str]:
    return [(row.node.name or row.node.id[:8]) if row.node else "Now" for row in window.projects_page.tree.model().rows]


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active and not window.projects_controller._reading, timeout=30_000)


@pytest.fixture
def project(window, qtbot, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project(PROJECT, str(base))
    app_states.save_state(PROJECT, "fresh", message="as set up")
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: tree_names(window) == ["fresh", "Now"], timeout=20_000)
    return PROJECT


def _fresh(window) -> str:
    return next(n.id for n in window.projects_controller.view.nodes if n.name == "fresh")


def _push_result(state_id: str) -> registry.PushResult:
    return registry.PushResult(REFERENCE, "sha256:" + "a" * 64, state_id, "fresh", None, None, "sha256:" + "b" * 64,
                               ["sha256:" + "c" * 64], [], [], 4096)


def test_export_push_instead_opens_the_push_dialog_and_its_values_reach_push_state(
    qtbot, window, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_push(**kwargs: Any) -> registry.PushResult:
        calls.append(kwargs)
        return _push_result(kwargs["ref"])

    monkeypatch.setattr(registry, "push_state", fake_push)
    controller, page = window.projects_controller, window.projects_page
    page.tree.select_state(_fresh(window))
    page.buttons["export"].click()
    export = controller.active_dialog
    assert isinstance(export, ExportDialog)
    qtbot.mouseClick(export.push, Qt.MouseButton.LeftButton)
    assert export.result() == PUSH_INSTEAD
    push = controller.active_dialog
    assert isinstance(push, PushDialog) and "fresh" in push.windowTitle()
    qtbot.keyClicks(push.where.reference, REFERENCE)
    qtbot.keyClicks(push.where.username, "physicist")
    qtbot.keyClicks(push.where.password, "pw")
    push.sign.setChecked(False)
    push.ok.click()
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.text()
    (call,) = calls
    assert (call["target"], call["project_name"], call["ref"], call["sign"]) == (REFERENCE, PROJECT, _fresh(window),
                                                                                False)
    assert (call["login"].username, call["login"].password) == ("physicist", "pw")
    assert callable(call["progress"]) and call["since"] is None
    assert controller.last_push.reference == REFERENCE and "State pushed" == controller.last_notice.windowTitle()


def test_the_state_menu_offers_push(qtbot, window, project: str) -> None:
    page = window.projects_page
    page.tree.select_state(_fresh(window))
    assert page.actions_by_key["push"].isEnabled()
    page._tree_menu(page.tree.visualRect(page.tree.model().index(0, 0)).center())
    keys = [a.objectName() for a in page.last_menu.actions() if a.objectName()]
    assert "push" in keys and "check-state" in keys
    page.last_menu.close()
    page.actions_by_key["push"].trigger()
    assert isinstance(window.projects_controller.active_dialog, PushDialog)
    window.projects_controller.active_dialog.reject()


def test_pull_beside_import_and_a_refused_login_shows_its_fix(
    qtbot, window, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_pull(**kwargs: Any) -> registry.PullResult:
        calls.append(kwargs)
        raise RegistryAuthError("registry.lab:5000 refused the credentials of 'physicist'",
                                fix="check the user and password, or log in with podman login registry.lab:5000")

    monkeypatch.setattr(registry, "pull_state", fake_pull)
    page = window.projects_page
    assert "action-pull" in {b.objectName() for b in page.buttons.values()}  # a button beside Import
    file_menu = window.menuBar().actions()[0].menu()
    assert "pull" in [a.objectName() for a in file_menu.actions()]
    page.buttons["pull"].click()
    pull = window.projects_controller.active_dialog
    assert isinstance(pull, PullDialog)
    qtbot.keyClicks(pull.where.reference, REFERENCE)
    pull.trust.setChecked(True)
    pull.ok.click()
    qtbot.waitUntil(lambda: window.jobs.last_failure_box is not None, timeout=20_000)
    wait_idle(qtbot, window)
    (call,) = calls
    assert call["source"] == REFERENCE and call["trust"] is True and call["login"].username is None
    box = window.jobs.last_failure_box
    assert "refused the credentials" in box.text()
    assert "podman login registry.lab:5000" in box.informativeText()
    box.close()


def test_an_unknown_signer_is_asked_about_and_pulled_again_only_if_accepted(
    qtbot, window, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    fresh = _fresh(window)

    def fake_pull(**kwargs: Any) -> registry.PullResult:
        calls.append(kwargs)
        if not kwargs["trust"]:
            raise exchange.Untrusted("fresh.vmlstate is signed by an unknown key; it was not imported")
        imported = exchange.ImportResult(PROJECT, fresh, "fresh", False, False, None, None, "anna@lab")
        return registry.PullResult(REFERENCE, imported, True, 8192)

    monkeypatch.setattr(registry, "pull_state", fake_pull)
    controller = window.projects_controller
    controller.pull_state(source=REFERENCE, trust=False, login=registry.Login())
    qtbot.waitUntil(lambda: isinstance(controller.active_dialog, QMessageBox), timeout=20_000)
    box = controller.active_dialog
    assert "unknown key" in box.text() and box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    assert window.jobs.last_failure_box is None  # a question, not a failure
    next(b for b in box.buttons() if b.text() == "Pull anyway").click()
    wait_idle(qtbot, window)
    assert [c["trust"] for c in calls] == [False, True]
    assert controller.last_pull.reference == REFERENCE
    assert controller.last_notice.windowTitle() == "State pulled"


def test_the_real_use_cases_take_the_dialogs_arguments(qtbot, window, project: str) -> None:
    """No fake: the real push and pull get what the dialogs give; a registry nobody answers on says how to fix it."""
    controller = window.projects_controller
    for start in (lambda: controller.ask_push(_fresh(window)), controller.ask_pull):
        dialog = start()
        dialog.where.reference.clear()  # the pull offers the reference pushed to before
        qtbot.keyClicks(dialog.where.reference, "127.0.0.1:9/group/states:fresh")
        window.jobs.last_failure_box = None
        dialog.ok.click()
        qtbot.waitUntil(lambda: window.jobs.last_failure_box is not None, timeout=30_000)
        wait_idle(qtbot, window)
        box = window.jobs.last_failure_box
        assert "TypeError" not in box.detailedText(), box.detailedText()
        assert "cannot reach the registry 127.0.0.1:9" in box.text()
        assert box.informativeText().startswith("To fix it: check the host name"), box.informativeText()
        box.close()
