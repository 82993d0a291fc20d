"""The Projects page (layout only): the project sidebar, machine and state actions, tree and logbook.

Buttons emit signals; :mod:`ui.controllers.projects` connects them to the project service.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSplitter,
    QToolBar,
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
    ("pull", "Pull from registry…", "Add a state from an OCI registry (verified before anything is written)"),
)
# actions of the menus only (no button): the state tree's and the sidebar's context menus, Edit and File
MENU_ACTIONS = (
    ("push", "Push to registry…", "Send the selected state to an OCI registry"),
    ("check-state", "Run checks", "Boot the selected state in a throw-away clone and run the project's checks"),
    ("check-project", "Run checks on all states", "Run the project's checks on every one of its states"),
    ("archive-project", "Archive project…", "Freeze the project, every state and its bases, in one .vmlarchive"),
    ("unarchive", "Unarchive…", "Make a project from a .vmlarchive file (checked before anything is written)"),
)
PROJECT_ACTIONS = (
    ("rename-project", "Rename project…", "Give the project another name"),
    ("delete-project", "Delete project…", "Delete the project, its states and its VM"),
)
# Shortcuts of the tree's keys: they act only while the state tree has the focus (Delete in a text field is text).
TREE_SHORTCUTS = {"delete": QKeySequence(Qt.Key.Key_Delete), "restore": QKeySequence(Qt.Key.Key_Return),
                  "rename": QKeySequence(Qt.Key.Key_F2)}
WINDOW_SHORTCUTS = {"save": QKeySequence("Ctrl+S")}  # spelled out: some platform themes bind no Quit or Save
STATE_MENU = ("restore", "branch", "rename", "delete", None, "export", "mail", "push", None, "check-state")
PROJECT_MENU = ("start", "shutdown", "suspend", "switch", "display", "settings", None, "check-project", None,
                "rename-project", "delete-project", "archive-project", "unarchive")
MENU_ONLY = {key for key, _text, _tip in (*PROJECT_ACTIONS, *MENU_ACTIONS)}


def _button(action: QAction, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setObjectName(f"action-{action.objectName()}")
    button.setDefaultAction(action)
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
        self.actions_by_key: dict[str, QAction] = {}
        for key, text, tip in (*MACHINE_ACTIONS, *STATE_ACTIONS, *PROJECT_ACTIONS, *MENU_ACTIONS):
            self._make(key, text, tip)
        machine_bar = self._bar("machine-bar", [key for key, _text, _tip in MACHINE_ACTIONS])
        state_bar = self._bar("state-bar", [key for key, _text, _tip in STATE_ACTIONS])
        self._shortcuts()
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._tree_menu)
        self.projects.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.projects.customContextMenuRequested.connect(self._project_menu)
        self.last_menu: QMenu | None = None

        heading = QVBoxLayout()
        heading.setSpacing(2)
        heading.addWidget(self.title)
        heading.addWidget(self.subtitle)

        tree_box = QWidget()
        tree_layout = QVBoxLayout(tree_box)
        tree_layout.setContentsMargins(0, 0, 0, 0)
        tree_layout.setSpacing(6)
        tree_layout.addWidget(_section("States"))
        tree_layout.addWidget(state_bar)
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
        right_layout.addWidget(machine_bar)
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

    def _make(self, key: str, text: str, tip: str) -> QAction:
        """The action for ``key`` (menus, shortcuts and the button share it) and its button."""
        action = QAction(text, self)
        action.setIconText(text)  # the button keeps the "…" that says a dialog comes first
        action.setObjectName(key)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda: self.action.emit(key))
        self.actions_by_key[key] = action
        if key not in MENU_ONLY:  # those live in menus only
            self.buttons[key] = _button(action, self)
        return action

    def _bar(self, name: str, keys: list[str]) -> QToolBar:
        """A row of buttons that folds what does not fit into its » menu, so the window can be narrow."""
        bar = QToolBar(self)
        bar.setObjectName(name)
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.setStyleSheet("QToolBar { border: none; spacing: 6px; }")
        for key in keys:
            bar.addWidget(self.buttons[key])
        return bar

    def _shortcuts(self) -> None:
        for key, sequence in TREE_SHORTCUTS.items():
            action = self.actions_by_key[key]
            action.setShortcut(sequence)
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.tree.addAction(action)
        for key, sequence in WINDOW_SHORTCUTS.items():
            self.actions_by_key[key].setShortcut(sequence)
            self.actions_by_key[key].setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            self.addAction(self.actions_by_key[key])

    def _menu(self, keys: tuple[str | None, ...], at: QPoint, widget: QWidget) -> QMenu:
        menu = QMenu(self)
        for key in keys:
            if key is None:
                menu.addSeparator()
            else:
                menu.addAction(self.actions_by_key[key])
        self.last_menu = menu
        menu.popup(widget.mapToGlobal(at))
        return menu

    def _tree_menu(self, at: QPoint) -> None:
        index = self.tree.indexAt(at)
        if index.isValid():
            self.tree.setCurrentIndex(index)
        if self.tree.selected_state():
            self._menu(STATE_MENU, at, self.tree.viewport())
        else:
            self._menu(("save", "import", "pull"), at, self.tree.viewport())

    def _project_menu(self, at: QPoint) -> None:
        item = self.projects.itemAt(at)
        if item is None:  # the sidebar's empty space: what makes a project without one selected
            self._menu(("unarchive",), at, self.projects.viewport())
            return
        self.projects.setCurrentItem(item)
        self._menu(PROJECT_MENU, at, self.projects.viewport())

    def set_heading(self, title: str, subtitle: str) -> None:
        self.title.setText(title)
        self.subtitle.setText(subtitle)

    def set_enabled_actions(self, enabled: dict[str, bool]) -> None:
        for key, on in enabled.items():
            if key in self.actions_by_key:
                self.actions_by_key[key].setEnabled(on)


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("section")
    return label


def separator() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line
