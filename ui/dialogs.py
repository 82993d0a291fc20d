"""Small non-blocking dialogs the pages open: save a state, name something, confirm a restore.

Each is opened with ``open()`` (never ``exec()``), so the event loop, running jobs and tests keep
going while it is up; the caller connects to ``accepted``.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)


def lay_out_form(
    dialog: QDialog,
    rows: Sequence[tuple[str, QWidget | QLayout]],
    *,
    ok: QDialogButtonBox.StandardButton = QDialogButtonBox.StandardButton.Ok,
    ok_text: str | None = None,
    above: Sequence[QWidget] = (),
    below: Sequence[QWidget] = (),
    width: int = 460,
) -> QDialogButtonBox:
    """The shape every form dialog has: lines ``above``, the labelled fields, lines ``below``, then ``ok``
    (Ok or Save, renamed ``ok_text``) and Cancel wired to accept and reject. Returns the buttons, for a
    dialog that enables its OK button as the fields change."""
    form = QFormLayout()
    for label, field in rows:
        form.addRow(label, field)
    buttons = QDialogButtonBox(ok | QDialogButtonBox.StandardButton.Cancel)
    if ok_text is not None:
        buttons.button(ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    for widget in above:
        layout.addWidget(widget)
    layout.addLayout(form)
    for widget in below:
        layout.addWidget(widget)
    layout.addWidget(buttons)
    dialog.resize(width, dialog.sizeHint().height())
    return buttons


class SaveStateDialog(QDialog):
    """Name (optional) and message of a new state."""

    def __init__(self, parent: QWidget | None, project: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Save a state of {project}")
        self.name = QLineEdit()
        self.name.setPlaceholderText("optional, e.g. after-calibration")
        self.message = QPlainTextEdit()
        self.message.setPlaceholderText("What is in this state? (shown in the tree and the logbook)")
        self.message.setFixedHeight(90)
        lay_out_form(self, [("Name:", self.name), ("Message:", self.message)], ok=QDialogButtonBox.StandardButton.Save)

    def values(self) -> tuple[str | None, str]:
        return (self.name.text().strip() or None, self.message.toPlainText().strip())


class TextDialog(QDialog):
    """One line of text (a new name, a mail address)."""

    def __init__(self, parent: QWidget | None, title: str, label: str, text: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.edit = QLineEdit(text)
        lay_out_form(self, [(label, self.edit)], width=420)

    def value(self) -> str:
        return self.edit.text().strip()


class BranchDialog(QDialog):
    """The name of a new branch off a state; Branch stays off until the name is new."""

    def __init__(self, parent: QWidget | None, source: str, taken: set[str]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Branch from a state")
        self.taken = taken
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("e.g. try-gcc13")
        about = QLabel(
            f"Go back to “{source}” and start a new branch there. Unsaved work is kept as an automatically"
            " saved state; a running machine is saved with its memory first."
        )
        about.setWordWrap(True)
        self.problem = QLabel("")
        self.problem.setObjectName("muted")
        self.buttons = lay_out_form(self, [("Branch name:", self.edit)], ok_text="Branch", above=[about],
                                    below=[self.problem])
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setEnabled(False)
        self.edit.textChanged.connect(self._check)

    def _check(self, text: str) -> None:
        name = text.strip()
        clash = name in self.taken
        self.problem.setText(f"A state called “{name}” exists: choose another name." if clash else "")
        self.ok.setEnabled(bool(name) and not clash)

    def value(self) -> str:
        return self.edit.text().strip()


class RestoreDialog(QDialog):
    """Asks before a restore; unsaved work is kept (auto-saved) unless the user picks Discard."""

    KEEP, DISCARD = 1, 2

    def __init__(self, parent: QWidget | None, target: str, *, dirty: bool, running: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Restore state")
        self.choice = 0
        lines = [f"<b>Go back to “{target}”?</b>"]
        if running:
            lines.append("The machine is running: it will be saved with its memory as a new state first.")
        if dirty:
            lines.append("The machine's disks have unsaved changes.")
        if dirty or running:
            lines.append("Keep them as an automatically saved state, or discard them for good?")
        text = QLabel("<br>".join(lines))
        text.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.keep = QPushButton("Keep changes and restore" if (dirty or running) else "Restore")
        self.keep.setDefault(True)
        buttons.addButton(self.keep, QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard = QPushButton("Discard changes and restore")
        if dirty or running:
            buttons.addButton(self.discard, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.keep.clicked.connect(lambda: self._pick(self.KEEP))
        self.discard.clicked.connect(lambda: self._pick(self.DISCARD))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)
        self.resize(480, self.sizeHint().height())

    def _pick(self, choice: int) -> None:
        self.choice = choice
        self.accept()


class ConsoleDialog(QDialog):
    """The last lines of the machine's serial console, read-only."""

    def __init__(self, parent: QWidget | None, project: str, text: str) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Console of {project}")
        self.text = QPlainTextEdit(text)
        self.text.setReadOnly(True)
        font = self.text.font()
        font.setFamily("monospace")
        self.text.setFont(font)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setAutoDefault(False)  # Return in the log must not close it (the screen is the place to type)
        close.setDefault(False)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(720, 420)


class NewProjectDialog(QDialog):
    """Name, appliance image (from the store), backend, CPUs and memory of a new project."""

    def __init__(
        self, parent: QWidget | None, images: list[tuple[str, str]], backends: list[tuple[str, str]]
    ) -> None:
        """``images`` and ``backends`` are (label, value) pairs; the value is what the service is given."""
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. higgs-mass")
        self.image = QComboBox()
        for label, value in images:
            self.image.addItem(label, value)
        self.backend = QComboBox()
        for label, value in backends:
            self.backend.addItem(label, value)
        self.cpus = QSpinBox()
        self.cpus.setRange(1, 64)
        self.cpus.setValue(1)
        self.memory = QSpinBox()
        self.memory.setRange(64, 1 << 20)
        self.memory.setSingleStep(256)
        self.memory.setSuffix(" MiB")
        self.memory.setValue(512)
        hint = QLabel("Appliances not in the store yet: use Set up, which downloads and verifies them.")
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        rows = [("Name:", self.name), ("Appliance:", self.image), ("Hypervisor:", self.backend), ("CPUs:", self.cpus),
                ("Memory:", self.memory)]
        buttons = lay_out_form(self, rows, ok_text="Create", below=[hint])
        buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(images))

    def values(self) -> dict[str, object]:
        return {
            "name": self.name.text().strip(),
            "image": self.image.currentData(),
            "backend": self.backend.currentData(),
            "cpus": self.cpus.value(),
            "memory_mib": self.memory.value(),
        }
