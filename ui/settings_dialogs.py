"""Dialogs about a VM's resources: Set up (name, CPUs, memory) and Settings (CPUs, memory, disk, shared folders).

Opened with ``open()`` like the other dialogs; the caller connects to ``accepted`` and reads ``values()``.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ui.dialogs import lay_out_form

MIB_PER_GIB = 1024


def _cpus(value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(1, 64)
    box.setValue(value)
    return box


def _memory(value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(64, 1 << 20)
    box.setSingleStep(256)
    box.setSuffix(" MiB")
    box.setValue(value)
    return box


def _free(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


class SetupDialog(QDialog):
    """Before a setup: the new project's name (never one that exists), CPUs and memory."""

    def __init__(self, parent: QWidget | None, appliance: str, taken: set[str], *, cpus: int = 1,
                 memory_mib: int = 1024) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Set up {appliance}")
        self.taken = taken
        self.name = QLineEdit(_free(appliance.split(":")[0], taken))
        self.cpus = _cpus(cpus)
        self.memory = _memory(memory_mib)
        self.problem = QLabel("")
        self.problem.setObjectName("muted")
        self.problem.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Project name:", self.name)
        form.addRow("CPUs:", self.cpus)
        form.addRow("Memory:", self.memory)
        about = QLabel("Downloads and verifies the appliance, makes a project of it and boots it. CPUs and memory"
                       " can be changed later in the project's Settings.")
        about.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Set up")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.name.textChanged.connect(self._check)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self._check(self.name.text())
        self.resize(460, self.sizeHint().height())

    def _check(self, text: str) -> None:
        name = text.strip()
        clash = name in self.taken
        self.problem.setText(
            f"A project called “{name}” exists. Choose another name; to run that one, use Start on the"
            " Projects page." if clash else ""
        )
        self.ok.setEnabled(bool(name) and not clash)

    def values(self) -> dict[str, object]:
        return {"name": self.name.text().strip(), "cpus": self.cpus.value(), "memory_mib": self.memory.value()}


class VMSettingsDialog(QDialog):
    """A project's CPUs, memory, the system disk's size and its shared folders; changes apply at the next boot."""

    def __init__(self, parent: QWidget | None, settings, *, running: bool) -> None:
        """``settings`` is ``vmlog.app.vm_settings.VMSettings``."""
        super().__init__(parent)
        self.setWindowTitle(f"Settings of {settings.project}")
        self.settings = settings
        self.cpus = _cpus(settings.cpus)
        self.memory = _memory(settings.memory_mib)
        system = settings.disk_sizes.get("system")
        self.disk_gib = QSpinBox()
        self.disk_gib.setSuffix(" GiB")
        self.disk_gib.setRange(max(1, -(-(system or 0) // (1 << 30))), 16384)
        self.disk_gib.setValue(self.disk_gib.minimum())
        self.first_disk_gib = self.disk_gib.value()
        self.disk_gib.setEnabled(system is not None and not running)
        self.disk_gib.setToolTip("A disk only grows, and only while the machine is off")
        self.shares = QListWidget()
        for share in settings.shares:
            self._add_row(share.host_path, share.tag, share.readonly)
        add, remove = QPushButton("Add folder…"), QPushButton("Remove")
        add.clicked.connect(self._browse)
        remove.clicked.connect(lambda: self.shares.takeItem(self.shares.currentRow()))
        share_buttons = QHBoxLayout()
        share_buttons.addStretch(1)
        share_buttons.addWidget(add)
        share_buttons.addWidget(remove)
        when = QLabel("The machine is on: CPUs and memory change at its next boot; shared folders at once where"
                      " the hypervisor can." if running else "Changes apply when the machine next starts.")
        when.setObjectName("muted")
        when.setWordWrap(True)
        self.browser: QFileDialog | None = None
        rows = [("CPUs:", self.cpus), ("Memory:", self.memory), ("System disk:", self.disk_gib),
                ("Shared folders:", self.shares), ("", share_buttons)]
        lay_out_form(self, rows, ok=QDialogButtonBox.StandardButton.Save, below=[when], width=520)

    def _add_row(self, host_path: str, tag: str, readonly: bool) -> None:
        item = QListWidgetItem(f"{tag}: {host_path}" + (" (read-only)" if readonly else ""))
        item.setData(256, (host_path, tag, readonly))
        self.shares.addItem(item)

    def _browse(self) -> None:
        self.browser = QFileDialog(self, "Share a folder with the machine")
        self.browser.setFileMode(QFileDialog.FileMode.Directory)
        self.browser.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.browser.fileSelected.connect(self.add_share)
        self.browser.open()

    def add_share(self, host_path: str, tag: str | None = None, readonly: bool = True) -> None:
        taken = {self.shares.item(i).data(256)[1] for i in range(self.shares.count())}
        base = tag or "".join(c if c.isalnum() or c in "._-" else "-" for c in host_path.rstrip("/").split("/")[-1])
        self._add_row(host_path, _free(base or "share", taken), readonly)

    def values(self) -> dict[str, object]:
        """Only what changed, as ``vmlog.app.vm_settings.set_vm_settings`` takes it."""
        old = {s.tag: s for s in self.settings.shares}
        rows = [self.shares.item(i).data(256) for i in range(self.shares.count())]
        new = {tag: (path, readonly) for path, tag, readonly in rows}
        changes: dict[str, object] = {}
        if self.cpus.value() != self.settings.cpus:
            changes["cpus"] = self.cpus.value()
        if self.memory.value() != self.settings.memory_mib:
            changes["memory_mib"] = self.memory.value()
        size = self.disk_gib.value() << 30
        grown = self.disk_gib.value() != self.first_disk_gib
        if grown and self.disk_gib.isEnabled() and size > (self.settings.disk_sizes.get("system") or 0):
            changes["disk_size"] = size
        removed = [tag for tag in old if tag not in new]
        added = [f"{path}:{tag}{'' if readonly else ':rw'}" for tag, (path, readonly) in new.items() if tag not in old]
        if removed:
            changes["remove_shares"] = removed
        if added:
            changes["add_shares"] = added
        return changes
