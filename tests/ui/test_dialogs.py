"""Every form dialog has one shape: lines above, labelled fields, lines below, then OK (or Save) and Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit

from ui.dialogs import BranchDialog, SaveStateDialog, lay_out_form
from ui.mail_dialog import MailSettingsDialog


def test_the_form_helper_lays_out_fields_and_wires_the_buttons(qtbot) -> None:
    dialog = QDialog()
    qtbot.addWidget(dialog)
    about, problem, name = QLabel("about"), QLabel("problem"), QLineEdit()
    buttons = lay_out_form(dialog, [("Name:", name)], ok=QDialogButtonBox.StandardButton.Save, ok_text="Keep",
                           above=[about], below=[problem], width=380)
    layout = dialog.layout()
    items = [layout.itemAt(i) for i in range(layout.count())]
    assert items[0].widget() is about and isinstance(items[1].layout(), QFormLayout)
    assert items[2].widget() is problem and items[3].widget() is buttons
    assert items[1].layout().labelForField(name).text() == "Name:"
    assert buttons.button(QDialogButtonBox.StandardButton.Save).text() == "Keep"
    finished: list[int] = []
    dialog.finished.connect(finished.append)
    dialog.open()
    buttons.button(QDialogButtonBox.StandardButton.Cancel).click()
    assert finished == [QDialog.DialogCode.Rejected]
    assert dialog.width() >= 380


def test_the_dialogs_built_on_it_keep_their_buttons(qtbot) -> None:
    save = SaveStateDialog(None, "lab")
    qtbot.addWidget(save)
    assert save.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save) is not None
    branch = BranchDialog(None, "calibrated", {"taken"})
    qtbot.addWidget(branch)
    assert branch.ok.text() == "Branch" and not branch.ok.isEnabled()
    branch.edit.setText("fresh")
    assert branch.ok.isEnabled()
    mail = MailSettingsDialog(None, None)
    qtbot.addWidget(mail)
    accepted: list[bool] = []
    mail.accepted.connect(lambda: accepted.append(True))
    mail.open()
    mail.host.setText("smtp.example.org")
    mail.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save).click()
    assert accepted and mail.settings().host == "smtp.example.org"
