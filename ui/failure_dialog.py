"""Showing a failed job to the user: one short sentence, the fix, and the traceback folded away."""

from __future__ import annotations

import re

from PySide6.QtWidgets import QMessageBox, QWidget

from ui.workers import Failure

# The use cases' fixes name ``vml`` commands and flags; in the window they read as what to do here.
GUI_FIXES: tuple[tuple[str, str], ...] = (
    (r"`vml down[^`]*` first, or pass --stop.*", "shut the machine down first, or restore and keep its changes"
                                                 " (they are saved as a state first)"),
    (r"`vml down[^`]*` first", "shut the machine down first (Shut down on the Projects page)"),
    (r"`vml up[^`]*` first", "start the machine first (Start on the Projects page)"),
    (r"vml config mail.*", "set the mail server in File ▸ Mail settings…, or send with your mail program"),
    (r"choose another project name with --name, or `vml project rm ([^`]+)` first",
     r"choose another project name, or delete the project \1 first (Edit ▸ Delete project…)"),
    (r"vml release umount (\S+) --project \S+", r"unmount \1 on the Releases page"),
    (r"see its releases with: vml release list --running --project \S+", "see them on the Releases page"),
    (r"name one, or `vml project new[^`]*`", "select a project, or make one with File ▸ New project…"),
    (r"`vml catalog add[^`]*`", "File ▸ Add catalog…"),
    (r"use `vml console [^`]*`.*", "use Console on the Projects page"),
    (r"list the projects with `vml project list`", "pick one of the projects in the sidebar"),
    (r"pass --ca-file[^,;]*", "choose the registry's CA certificate in the dialog"),
    (r",? or pass --username NAME", ", or fill in User and Password in the dialog"),
    (r"pass the password on stdin with --password-stdin.*", "fill in the password in the dialog"),
)


def gui_fix(fix: str) -> str:
    """The fix in the window's words; a command that has no button yet is marked as one for a terminal."""
    for pattern, words in GUI_FIXES:
        fix = re.sub(pattern, words, fix)
    return fix + (" (in a terminal)" if "`vml " in fix else "")


def failure_box(parent: QWidget | None, title: str, failure: Failure) -> QMessageBox:
    """A message box whose details (the traceback) stay folded until the user asks for them."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(failure.message)
    if failure.fix:
        box.setInformativeText(f"To fix it: {gui_fix(failure.fix)}")
    box.setDetailedText(failure.details)
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box


def show_failure(parent: QWidget | None, title: str, failure: Failure) -> QMessageBox:
    """Open the box without blocking the event loop (tests and other jobs keep running)."""
    box = failure_box(parent, title, failure)
    box.setModal(True)
    box.open()
    return box
