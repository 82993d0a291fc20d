"""Archive and unarchive from the project menu: file dialogs, jobs with progress, a new name when one is taken.

The archive use cases are replaced by fakes that record their arguments (the format is tested in
tests/vmlog/archive).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QFileDialog

from ui.dialogs import TextDialog
from vmlog.app import archive, projects
from vmlog.app import states as app_states
from vmlog.errors import AlreadyExists

PROJECT = "lab"


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active and not window.projects_controller._reading, timeout=30_000)


@pytest.fixture
def project(window, qtbot, tmp_path: Path) -> str:
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project(PROJECT, str(base))
    window.projects_controller.refresh()
    qtbot.waitUntil(lambda: window.projects_page.projects.names() == [PROJECT], timeout=20_000)
    return PROJECT


def test_archive_project_asks_where_and_runs_with_progress(
    qtbot, window, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_archive(name: str, out: Path, *, ctx=None, progress=None) -> archive.ArchiveResult:
        calls.append((name, out))
        progress("writing layers", 0.5)
        return archive.ArchiveResult(out, name, 2048, "d" * 64, 1, 1, 1, 4096)

    monkeypatch.setattr(archive, "archive_project", fake_archive)
    page = window.projects_page
    page._project_menu(page.projects.visualItemRect(page.projects.item(0)).center())
    assert {"archive-project", "unarchive"} <= {a.objectName() for a in page.last_menu.actions()}
    page.last_menu.close()
    page.actions_by_key["archive-project"].trigger()
    dialog = window.projects_controller.active_dialog
    assert isinstance(dialog, QFileDialog) and dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert "*.vmlarchive" in dialog.nameFilters()[0]
    dest = tmp_path / "lab.vmlarchive"
    dialog.fileSelected.emit(str(dest))
    dialog.reject()
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.text()
    assert calls == [(PROJECT, dest)]
    assert window.projects_controller.last_notice.windowTitle() == "Project archived"


def test_unarchive_asks_a_new_name_when_the_archived_one_is_taken(
    qtbot, window, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []

    def fake_unarchive(path: Path, *, name=None, ctx=None, progress=None) -> archive.UnarchiveResult:
        calls.append(name)
        progress("verifying the archive (nothing is written yet)", 0.0)
        if (name or PROJECT) == PROJECT:
            raise AlreadyExists(f"a project called {name or PROJECT!r} exists here")
        return archive.UnarchiveResult(name, PROJECT, "kvm", 1, 1, [], None)

    monkeypatch.setattr(archive, "unarchive_project", fake_unarchive)
    file_menu = window.menuBar().actions()[0].menu()
    assert "unarchive" in [a.objectName() for a in file_menu.actions()]
    window.projects_page.actions_by_key["unarchive"].trigger()
    dialog = window.projects_controller.active_dialog
    assert isinstance(dialog, QFileDialog) and dialog.fileMode() == QFileDialog.FileMode.ExistingFile
    source = tmp_path / "lab.vmlarchive"
    dialog.fileSelected.emit(str(source))
    dialog.reject()
    qtbot.waitUntil(lambda: isinstance(window.projects_controller.active_dialog, TextDialog), timeout=20_000)
    prompt = window.projects_controller.active_dialog
    assert prompt.value() == "lab-2"  # a free name is offered
    prompt.edit.setText("lab-1999")
    prompt.accept()
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.text()
    assert calls == [None, "lab-1999"]
    assert window.projects_controller.last_unarchive.project == "lab-1999"


def test_the_real_archive_and_unarchive_round_trip(qtbot, window, project: str, tmp_path: Path) -> None:
    """No fake: the window's archive and unarchive reach the real use cases, and the unarchived project shows."""
    app_states.save_state(PROJECT, "fresh", message="as set up")  # an archive holds states
    controller = window.projects_controller
    dest = tmp_path / "lab.vmlarchive"
    controller.archive_project(PROJECT, dest)
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.informativeText()
    assert dest.is_file() and controller.last_archive.path == dest
    controller.unarchive(dest)  # "lab" exists: the window asks for another name
    qtbot.waitUntil(lambda: isinstance(controller.active_dialog, TextDialog), timeout=30_000)
    controller.active_dialog.accept()  # the free name it offers
    qtbot.waitUntil(lambda: getattr(controller, "last_unarchive", None) is not None, timeout=60_000)
    wait_idle(qtbot, window)
    assert window.jobs.last_failure_box is None, window.jobs.last_failure_box.text()
    assert controller.last_unarchive.project == "lab-2"
    qtbot.waitUntil(lambda: "lab-2" in window.projects_page.projects.names(), timeout=20_000)
