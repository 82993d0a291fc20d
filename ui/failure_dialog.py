"""Showing a failed job to the user: one short sentence, the fix, and the traceback folded away."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from ui.workers import Failure


def failure_box(parent: QWidget | None, title: str, failure: Failure) -> QMessageBox:
    """A message box whose details (the traceback) stay folded until the user asks for them."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(failure.message)
    if failure.fix:
        box.setInformativeText(f"To fix it: {failure.fix}")
    box.setDetailedText(failure.details)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box


def show_failure(parent: QWidget | None, title: str, failure: Failure) -> QMessageBox:
    """Open the box without blocking the event loop (tests and other jobs keep running)."""
    box = failure_box(parent, title, failure)
    box.setModal(True)
    box.open()
    return box
