"""Export offers "Push to registry…"; the push and pull dialogs give the registry use cases their arguments."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from ui.bundle_dialogs import PUSH_INSTEAD, ExportDialog, PullDialog, PushDialog


def test_export_offers_a_push_instead(qtbot, tmp_path: Path) -> None:
    dialog = ExportDialog(None, "s2", tmp_path / "s2.vmlstate", [("s1", "c0ffee00")], has_memory=False)
    qtbot.addWidget(dialog)
    dialog.open()
    qtbot.mouseClick(dialog.push, Qt.MouseButton.LeftButton)
    assert dialog.result() == PUSH_INSTEAD


def test_push_dialog_values(qtbot, tmp_path: Path) -> None:
    dialog = PushDialog(None, "s2", [("s1", "c0ffee00")])
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()  # no reference yet
    qtbot.keyClicks(dialog.where.reference, "registry.lab:5000/group/states:s2")
    assert dialog.ok.isEnabled()
    dialog.since.setCurrentIndex(1)
    qtbot.keyClicks(dialog.where.username, "physicist")
    qtbot.keyClicks(dialog.where.password, "pw")
    dialog.where.ca_file.setText(str(tmp_path / "ca.crt"))
    values = dialog.values()
    assert values["target"] == "registry.lab:5000/group/states:s2" and values["since"] == "c0ffee00"
    assert values["sign"] is True
    login = values["login"]
    assert (login.username, login.password, login.ca_file) == ("physicist", "pw", tmp_path / "ca.crt")


def test_pull_dialog_uses_the_auth_file_when_no_user_is_given(qtbot) -> None:
    dialog = PullDialog(None, "registry.lab/group/states:s1")
    qtbot.addWidget(dialog)
    assert dialog.ok.isEnabled()
    dialog.trust.setChecked(True)
    values = dialog.values()
    assert values["source"] == "registry.lab/group/states:s1" and values["trust"] is True
    assert values["login"].username is None and values["login"].password is None
