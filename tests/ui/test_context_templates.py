"""File ▸ Context templates… lists the home's templates, built-in ones first, with each one's kind and text."""

from __future__ import annotations

from pathlib import Path

from ui.context_templates import ContextTemplatesDialog
from vmlog.app import contexts


def test_the_menu_opens_the_templates_with_their_text(qtbot, window, vmlog_home: Path) -> None:
    contexts.new_template("my-lab", kind="nocloud", description="my lab's users")
    file_menu = window.menuBar().actions()[0].menu()
    action = next(a for a in file_menu.actions() if a.objectName() == "context-templates")
    action.trigger()
    dialog = window.window_actions.active_dialog
    assert isinstance(dialog, ContextTemplatesDialog)
    names = dialog.names()
    rows = contexts.list_templates()
    assert names == [r.name for r in rows] and "my-lab" in names
    builtin = [r.builtin for r in rows]
    assert builtin == sorted(builtin, reverse=True)  # the built-in ones first
    dialog.list.setCurrentRow(names.index("my-lab"))
    assert "my-lab" in dialog.about.text() and "nocloud" in dialog.about.text()
    assert dialog.text.toPlainText() == contexts.show_template("my-lab").text
    assert dialog.text.isReadOnly()
    dialog.reject()
