"""The window's menu bar: File, Edit, View, VM and Help, with the platform's shortcuts.

Edit and VM hold the Projects page's own actions (the same objects as its buttons, so enabling follows);
File and View hold window actions the controllers connect to (:func:`ui.controllers.wire`).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from vmlog import __version__

MainWindow = Any  # ui.main_window.MainWindow, which imports this module

EDIT_KEYS = ("save", "restore", "branch", "rename", "delete", None, "export", "mail", "import", "push", "pull", None,
             "check-state", "check-project", None, "rename-project", "delete-project", "archive-project")
VM_KEYS = ("start", "shutdown", "suspend", "switch", None, "display", "console", "settings")
ABOUT = (
    "<b>vmlog {version}</b><br>The Virtual Machine Logbook: one VM per project, a tree of saved states you can go"
    " back to and branch from, states you can share as .vmlstate files, and a logbook of everything.<br><br>"
    "The <tt>vml</tt> command does all of it from a terminal, on the same projects."
)


def _action(window: MainWindow, key: str, text: str, shortcut: QKeySequence | QKeySequence.StandardKey | None = None,
            tip: str = "") -> QAction:
    action = QAction(text, window)
    action.setObjectName(key)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    window.menu_actions[key] = action
    window.addAction(action)  # its shortcut works wherever the focus is in the window, menu bar shown or not
    return action


def build_menus(window: MainWindow) -> None:
    """Fill ``window.menuBar()``; ``window.menu_actions`` maps each window action's key to it."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(_action(window, "new-project", "&New project…", QKeySequence("Ctrl+N"),
                                "Make a project on an appliance image already in the store"))
    file_menu.addAction(window.projects_page.actions_by_key["import"])
    file_menu.addAction(window.projects_page.actions_by_key["pull"])
    file_menu.addAction(window.projects_page.actions_by_key["unarchive"])
    file_menu.addSeparator()
    file_menu.addAction(_action(window, "add-catalog", "Add &catalog…", tip="Add a catalog of appliances by URL"))
    file_menu.addAction(_action(window, "remove-image", "&Remove stored image…",
                                tip="Delete an appliance image no project uses from the store"))
    file_menu.addAction(_action(window, "mail-settings", "&Mail settings…",
                                tip="The SMTP server states are shared through"))
    file_menu.addAction(_action(window, "context-templates", "Context &templates…",
                                tip="The templates Set up can contextualise a new VM with"))
    file_menu.addSeparator()
    quit_action = _action(window, "quit", "&Quit", QKeySequence("Ctrl+Q"))
    quit_action.triggered.connect(window.close)
    file_menu.addAction(quit_action)
    _page_menu(bar.addMenu("&Edit"), window, EDIT_KEYS)
    view = bar.addMenu("&View")
    for number, page in enumerate(("Projects", "Appliances", "Releases"), start=1):
        action = _action(window, f"show-{page.lower()}", f"&{page}", QKeySequence(f"Ctrl+{number}"))
        action.triggered.connect(lambda _checked=False, page=page: window.show_page(page))
        view.addAction(action)
    view.addSeparator()
    view.addAction(_action(window, "refresh", "&Refresh", QKeySequence("F5")))
    _page_menu(bar.addMenu("V&M"), window, VM_KEYS)
    help_menu = bar.addMenu("&Help")
    about = _action(window, "about", "&About vmlog")
    about.triggered.connect(lambda: show_about(window))
    help_menu.addAction(about)


def _page_menu(menu: QMenu, window: MainWindow, keys: tuple[str | None, ...]) -> None:
    for key in keys:
        if key is None:
            menu.addSeparator()
        else:
            menu.addAction(window.projects_page.actions_by_key[key])


def show_about(window: MainWindow) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.NoIcon, "About vmlog", ABOUT.format(version=__version__),
                      QMessageBox.StandardButton.Ok, window)
    box.setIconPixmap(window.windowIcon().pixmap(64, 64))
    window.about_box = box
    box.open()
    return box
