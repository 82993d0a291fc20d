"""Dialogs for sharing states: export (with an incremental "since" choice), import (who signed it, where
it goes), share by mail (address and how to send), and push to / pull from an OCI registry.

They only collect choices; :mod:`ui.controllers.projects` hands them to ``vmlog.app.exchange`` and
``vmlog.app.registry``.
All open with ``open()`` and Qt's own file dialogs, so nothing blocks the event loop.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ui.formatting import human_bytes
from vmlog.app.exchange import BundleInfo

if TYPE_CHECKING:
    from vmlog.app.registry import Login

BUNDLE_FILTER = "vmlog states (*.vmlstate)"
PUSH_INSTEAD = 2  # ExportDialog's result when the user chose "Push to registry…" (QDialog.Accepted is 1)
REFERENCE_EXAMPLE = "registry.example.org/group/states:after-calibration"


def file_dialog(parent: QWidget | None, title: str, start: Path, *, save: bool) -> QFileDialog:
    """Qt's own (non-native) file dialog, so it opens without blocking and behaves the same everywhere."""
    dialog = QFileDialog(parent, title, str(start), BUNDLE_FILTER)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    if save:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("vmlstate")
        if start.suffix:
            dialog.selectFile(start.name)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    return dialog


class ExportDialog(QDialog):
    """Where to write the bundle and what it holds: everything since the base, or since an earlier state."""

    def __init__(
        self, parent: QWidget | None, state: str, dest: Path, earlier: list[tuple[str, str]], *, has_memory: bool
    ) -> None:
        """``earlier`` is (label, id) of the state's ancestors, nearest first."""
        super().__init__(parent)
        self.setWindowTitle(f"Export {state}")
        self.path = QLineEdit(str(dest))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.browser: QFileDialog | None = None
        where = QHBoxLayout()
        where.addWidget(self.path, 1)
        where.addWidget(browse)
        self.since = QComboBox()
        self.since.addItem("the base appliance (the recipient needs nothing else)", None)
        for label, state_id in earlier:
            self.since.addItem(f"{label} (the recipient has this state)", state_id)
        self.memory = QCheckBox("Include the memory image (only for the same hypervisor)")
        self.memory.setEnabled(has_memory)
        self.sign = QCheckBox("Sign with my key")
        self.sign.setChecked(True)
        form = QFormLayout()
        form.addRow("File:", where)
        form.addRow("Changes since:", self.since)
        form.addRow("", self.memory)
        form.addRow("", self.sign)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Save).setText("Export")
        self.push = buttons.addButton("Push to registry…", QDialogButtonBox.ButtonRole.ActionRole)
        self.push.clicked.connect(lambda: self.done(PUSH_INSTEAD))
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _browse(self) -> None:
        self.browser = file_dialog(self, "Export state", Path(self.path.text()), save=True)
        self.browser.fileSelected.connect(self.path.setText)
        self.browser.open()

    def values(self) -> dict[str, Any]:
        return {
            "dest": Path(self.path.text().strip()).expanduser(),
            "since": self.since.currentData(),
            "with_memory": self.memory.isChecked(),
            "sign": self.sign.isChecked(),
        }


def free_name(wanted: str, taken: list[str]) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``... : the first project name not taken yet."""
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


class ImportDialog(QDialog):
    """What a verified bundle holds and who signed it; where it goes (a new project or a branch)."""

    def __init__(
        self, parent: QWidget | None, file_name: str, about: BundleInfo, projects: list[str], current: str | None
    ) -> None:
        """``about`` is ``vmlog.app.exchange.describe_bundle``'s output."""
        super().__init__(parent)
        self.setWindowTitle(f"Import {file_name}")
        state, base = about.state, about.base
        own = bool(getattr(about, "own_key", False))  # the user's own signing key: nothing to accept
        self.trusted = bool(about.signer and (about.signer.known or own))
        changed = sum(int(d.get("changed_bytes") or 0) + int(d.get("referenced_bytes") or 0) for d in about.disks)
        where = "in the store" if about.base_in_store else f"will be downloaded, {human_bytes(base['size'])}"
        lines = [
            f"<b>{html.escape(str(state.get('name') or str(state.get('id'))[:12]))}</b>"
            f" by {html.escape(str(state.get('author')))}",
            html.escape(str(state.get("message") or "")),
            f"Base: {html.escape(str(base['name']))} {html.escape(str(base['version']))} ({where})",
            f"Changed data: {human_bytes(changed)}" + (" · with memory image" if about.memory else ""),
        ]
        summary = QLabel("<br>".join(line for line in lines if line))
        summary.setWordWrap(True)
        signature = f"signed by you ({about.signer.name})" if own and about.signer else about.signature
        self.signature = QLabel(html.escape(signature))
        self.signature.setWordWrap(True)
        if not self.trusted:
            self.signature.setStyleSheet("color: #c0392b")
        since = about.since
        self.new_project = QRadioButton("As a new project:")
        self.branch = QRadioButton("As a branch of project:")
        group = QButtonGroup(self)
        group.addButton(self.new_project)
        group.addButton(self.branch)
        self.project_name = QLineEdit(free_name(str(state.get("project") or "imported"), projects))
        self.existing = QComboBox()
        self.existing.addItems(projects)
        if current in projects:
            self.existing.setCurrentText(current)
        self.branch.setEnabled(bool(projects))
        self.new_project.setChecked(True)
        self.remember = QCheckBox("Accept this signer's key from now on")
        self.remember.setVisible(about.signer is not None and not self.trusted)
        form = QFormLayout()
        if since:
            form.addRow(QLabel(f"It builds on state {html.escape(str(since['state_id'])[:12])}, which it joins."))
            self.new_project.setEnabled(False)
            self.branch.setEnabled(False)
        else:
            form.addRow(self.new_project, self.project_name)
            form.addRow(self.branch, self.existing)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Import" if self.trusted else "Import anyway")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.signature)
        if not self.trusted:
            warning = QLabel(
                "Only import it if you know who sent it: check the fingerprint with the sender."
            )
            warning.setWordWrap(True)
            layout.addWidget(warning)
        layout.addLayout(form)
        layout.addWidget(self.remember)
        layout.addWidget(buttons)
        self.resize(540, self.sizeHint().height())

    def target(self) -> str | None:
        """The project to import into (None: the service picks a fresh name or the since state's project)."""
        if self.branch.isChecked():
            return self.existing.currentText() or None
        if self.new_project.isChecked() and self.new_project.isEnabled():
            return self.project_name.text().strip() or None
        return None


class MailDialog(QDialog):
    """The recipient and how to send: the configured SMTP server, or the desktop mail client."""

    def __init__(self, parent: QWidget | None, state: str, smtp_host: str | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Share {state} by mail")
        self.to = QLineEdit()
        self.to.setPlaceholderText("colleague@example.org")
        self.smtp = QRadioButton(f"Send through {smtp_host}" if smtp_host else "Send through an SMTP server")
        self.client = QRadioButton("Attach it in my mail program")
        group = QButtonGroup(self)
        group.addButton(self.smtp)
        group.addButton(self.client)
        self.smtp.setEnabled(bool(smtp_host))
        (self.smtp if smtp_host else self.client).setChecked(True)
        form = QFormLayout()
        form.addRow("To:", self.to)
        form.addRow("", self.smtp)
        form.addRow("", self.client)
        if not smtp_host:
            hint = QLabel("No SMTP server is set up: `vml config mail --host HOST --user USER` adds one.")
            hint.setObjectName("muted")
            hint.setWordWrap(True)
            form.addRow("", hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Send")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(480, self.sizeHint().height())

    def values(self) -> tuple[str, bool]:
        return self.to.text().strip(), self.client.isChecked()


class RegistryLogin(QWidget):
    """A registry reference and how to log in: the auth file (as ``podman login`` left it), or a user and password."""

    def __init__(self, parent: QWidget | None, reference: str = "") -> None:
        super().__init__(parent)
        self.reference = QLineEdit(reference)
        self.reference.setPlaceholderText(REFERENCE_EXAMPLE)
        self.username = QLineEdit()
        self.username.setPlaceholderText("from the Podman/Docker auth file")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.ca_file = QLineEdit()
        self.ca_file.setPlaceholderText("certs.d/HOST/ca.crt, else the system's CAs")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.browser: QFileDialog | None = None
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(browse)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.addRow("Reference:", self.reference)
        self.form.addRow("User:", self.username)
        self.form.addRow("Password:", self.password)
        self.form.addRow("CA certificate:", ca_row)

    def _browse(self) -> None:
        self.browser = QFileDialog(self, "The registry's CA certificate", str(Path.home()), "PEM files (*.crt *.pem)")
        self.browser.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.browser.setFileMode(QFileDialog.FileMode.ExistingFile)
        self.browser.fileSelected.connect(self.ca_file.setText)
        self.browser.open()

    def login(self) -> Login:
        from vmlog.app.registry import Login  # here: the HTTP client loads only when a registry is used

        user = self.username.text().strip() or None
        ca = self.ca_file.text().strip()
        return Login(user, self.password.text() if user else None, ca_file=Path(ca).expanduser() if ca else None)



def _lay_out_registry_dialog(dialog: QDialog, where: RegistryLogin, hint_text: str, ok_text: str,
                             reference: str) -> QPushButton:
    """The push and pull dialogs' common body: the login form, a hint, OK (named ``ok_text``, enabled while a
    reference is given) and Cancel. Returns the OK button."""
    hint = QLabel(hint_text)
    hint.setObjectName("muted")
    hint.setWordWrap(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
    ok.setText(ok_text)
    ok.setEnabled(bool(reference))
    where.reference.textChanged.connect(lambda text: ok.setEnabled(bool(text.strip())))
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(where)
    layout.addWidget(hint)
    layout.addWidget(buttons)
    dialog.resize(560, dialog.sizeHint().height())
    return ok


class PushDialog(QDialog):
    """Where in a registry a state goes (``HOST/REPO:TAG``), since which state, signed or not, and the login."""

    def __init__(self, parent: QWidget | None, state: str, earlier: list[tuple[str, str]], reference: str = "") -> None:
        """``earlier`` is (label, id) of the state's ancestors, nearest first (they must be in the repository)."""
        super().__init__(parent)
        self.setWindowTitle(f"Push {state} to a registry")
        self.where = RegistryLogin(self, reference)
        self.since = QComboBox()
        self.since.addItem("the base appliance (sent once per repository)", None)
        for label, state_id in earlier:
            self.since.addItem(f"{label} (already pushed to this repository)", state_id)
        self.sign = QCheckBox("Sign with my key")
        self.sign.setChecked(True)
        self.where.form.insertRow(1, "Changes since:", self.since)
        self.where.form.insertRow(2, "", self.sign)
        self.ok = _lay_out_registry_dialog(
            self, self.where, "Only the blobs the repository lacks are sent; the tag defaults to the state's name.",
            "Push", reference,
        )

    def values(self) -> dict[str, Any]:
        """The keyword arguments of ``vmlog.app.registry.push_state`` (with ``target``)."""
        return {"target": self.where.reference.text().strip(), "since": self.since.currentData(),
                "sign": self.sign.isChecked(), "login": self.where.login()}


class PullDialog(QDialog):
    """Which state to pull (``HOST/REPO:TAG`` or ``@sha256:…``), the login, whether an unknown signer is accepted."""

    def __init__(self, parent: QWidget | None, reference: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Pull a state from a registry")
        self.where = RegistryLogin(self, reference)
        self.trust = QCheckBox("Import it even if its signer's key is not one I accepted")
        self.where.form.addRow("", self.trust)
        self.ok = _lay_out_registry_dialog(
            self, self.where, "Everything is verified before anything is written, as for an imported file; a missing"
            " parent state and the base appliance come from the same repository.", "Pull", reference,
        )

    def values(self) -> dict[str, Any]:
        """The keyword arguments of ``vmlog.app.registry.pull_state`` (with ``source``)."""
        return {"source": self.where.reference.text().strip(), "trust": self.trust.isChecked(),
                "login": self.where.login()}
