"""Dialogs of the File menu: the SMTP server states are mailed through, and which stored image to remove."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs import lay_out_form
from ui.formatting import human_bytes
from vmlog.app import mail

SECURITY = (("STARTTLS", "starttls"), ("TLS from the start (SMTPS)", "ssl"), ("None (local relay only)", "none"))


class MailSettingsDialog(QDialog):
    """Host, port, security, user and sender address of the SMTP server (the password is asked when sending)."""

    def __init__(self, parent: QWidget | None, current: mail.SmtpSettings | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Mail settings")
        self.host = QLineEdit(current.host if current else "")
        self.host.setPlaceholderText("smtp.example.org")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(current.port if current else 587)
        self.security = QComboBox()
        for label, value in SECURITY:
            self.security.addItem(label, value)
        if current:
            self.security.setCurrentIndex(max(0, self.security.findData(current.security)))
        self.user = QLineEdit(current.user or "" if current else "")
        self.sender = QLineEdit(current.sender or "" if current else "")
        self.sender.setPlaceholderText("the user, if empty")
        rows = [("SMTP server:", self.host), ("Port:", self.port), ("Security:", self.security), ("User:", self.user),
                ("From address:", self.sender)]
        lay_out_form(self, rows, ok=QDialogButtonBox.StandardButton.Save, width=440)

    def settings(self) -> mail.SmtpSettings | None:
        host = self.host.text().strip()
        if not host:
            return None
        return mail.SmtpSettings(host=host, port=self.port.value(), security=self.security.currentData(),
                                 user=self.user.text().strip() or None, sender=self.sender.text().strip() or None)


class RemoveImageDialog(QDialog):
    """Pick a stored image to delete; images a project or state uses are listed but cannot be picked."""

    def __init__(self, parent: QWidget | None, rows: list[Any]) -> None:
        """``rows`` are ``vmlog.app.appliances.list_images()`` rows."""
        super().__init__(parent)
        self.setWindowTitle("Remove a stored image")
        self.images = QComboBox()
        for row in rows:
            image = row.image
            used = f" — used by {', '.join(row.refs[:3])}" if row.refs else ""
            self.images.addItem(f"{image.name} {image.version} ({human_bytes(image.size)}){used}", image.sha256)
            self.images.model().item(self.images.count() - 1).setEnabled(not row.refs)
        free = [i for i, row in enumerate(rows) if not row.refs]
        if free:
            self.images.setCurrentIndex(free[0])
        note = QLabel("The image is deleted from the store; it can be downloaded again from its catalog."
                      if rows else "The store holds no images.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Remove")
        self.ok.setEnabled(bool(free))
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.images)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(520, self.sizeHint().height())

    def choice(self) -> str | None:
        index = self.images.currentIndex()
        if index < 0 or not self.images.model().item(index).isEnabled():
            return None
        return self.images.currentData()
