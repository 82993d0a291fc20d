"""The Projects page (layout only): the project sidebar, machine and state actions, tree and logbook.

Buttons emit signals; :mod:`ui.controllers.projects` connects them to the project service.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.logbook_panel import LogbookPanel
from ui.project_list import ProjectList
from ui.statetree.view import StateTreeView

MACHINE_ACTIONS = (
    ("start", "Start", "Boot the machine, or resume it where it was suspended"),
    ("shutdown", "Shut down", "Ask the guest to power off"),
    ("suspend", "Suspend", "Write the machine's memory to disk and stop it"),
    ("switch", "Switch here", "Suspend the running project and resume this one"),
    ("display", "Screen", "Show the machine's screen; keyboard and mouse go to it"),
    ("console", "Console", "Read the machine's serial console"),
    ("settings", "Settings…", "CPUs, memory, disk size and shared folders of the machine"),
)
STATE_ACTIONS = (
    ("save", "Save state…", "Freeze the machine's disks as a new state, with a message"),
    ("restore", "Restore", "Go back to the selected state"),
    ("branch", "Branch…", "Start a new branch from the selected state"),
    ("rename", "Rename…", "Give the selected state a name"),
    ("delete", "Delete", "Delete the selected state"),
    ("export", "Export…", "Write the selected state to a .vmlstate file"),
    ("mail", "Share by mail…", "Send the selected state as a .vmlstate attachment"),
    ("import", "Import…", "Add the state in a .vmlstate file to this project"),
)


def _button(key: str, text: str, tip: str, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setObjectName(f"action-{key}")
    button.setText(text)
    button.setToolTip(tip)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    button.setAutoRaise(False)
    button.setMinimumHeight(30)
    return button


class ProjectsPage(QWidget):
    """Everything about the selected project; ``action`` carries which button the user pressed."""

    action = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.projects = ProjectList()
        self.tree = StateTreeView()
        self.logbook = LogbookPanel()
        self.title = QLabel("No project")
        self.title.setObjectName("page-title")
        self.subtitle = QLabel("")
        self.subtitle.setObjectName("page-subtitle")
        self.buttons: dict[str, QToolButton] = {}

        machine_bar = QHBoxLayout()
        machine_bar.setSpacing(6)
        for key, text, tip in MACHINE_ACTIONS:
            machine_bar.addWidget(self._make(key, text, tip))
        machine_bar.addStretch(1)
        state_bar = QHBoxLayout()
        state_bar.setSpacing(6)
        for key, text, tip in STATE_ACTIONS:
            state_bar.addWidget(self._make(key, text, tip))
        state_bar.addStretch(1)

        heading = QVBoxLayout()
        heading.setSpacing(2)
        heading.addWidget(self.title)
        heading.addWidget(self.subtitle)

        tree_box = QWidget()
        tree_layout = QVBoxLayout(tree_box)
        tree_layout.setContentsMargins(0, 0, 0, 0)
        tree_layout.setSpacing(6)
        tree_layout.addWidget(_section("States"))
        tree_layout.addLayout(state_bar)
        tree_layout.addWidget(self.tree, 1)
        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.setSpacing(6)
        log_layout.addWidget(_section("Logbook"))
        log_layout.addWidget(self.logbook, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(tree_box)
        split.addWidget(log_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(16, 12, 16, 12)
        right_layout.setSpacing(10)
        right_layout.addLayout(heading)
        right_layout.addLayout(machine_bar)
        right_layout.addWidget(split, 1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(12, 12, 0, 12)
        left_layout.addWidget(_section("Projects"))
        left_layout.addWidget(self.projects, 1)

        outer = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(left)
        outer.addWidget(right)
        outer.setStretchFactor(1, 1)
        outer.setSizes([290, 900])
        outer.setChildrenCollapsible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(outer)

    def _make(self, key: str, text: str, tip: str) -> QToolButton:
        button = _button(key, text, tip, self)
        button.clicked.connect(lambda: self.action.emit(key))
        self.buttons[key] = button
        return button

    def set_heading(self, title: str, subtitle: str) -> None:
        self.title.setText(title)
        self.subtitle.setText(subtitle)

    def set_enabled_actions(self, enabled: dict[str, bool]) -> None:
        for key, on in enabled.items():
            if key in self.buttons:
                self.buttons[key].setEnabled(on)


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("section")
    return label


def separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line
