"""Small things the window got wrong: memory states unmarked, "0.0 MB" for 10 KiB, a taken project name proposed
for an import, the user's own signature shown as an unknown key, Start/Running where the CLI says mount/umount."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ui.bundle_dialogs import ImportDialog, free_name
from ui.pages.releases import ReleasesPage
from ui.statetree.layout import StateNode
from ui.statetree.view import StateTreeView
from vmlog.app import exchange


def test_a_state_with_memory_is_marked_in_the_tree(qtbot) -> None:
    view = StateTreeView()
    qtbot.addWidget(view)
    nodes = [StateNode("a", None, "disk-only", 1, "me", ""), StateNode("b", "a", "hot", 2, "me", "", memory=True)]
    view.set_states(nodes, "b")
    model = view.model()
    names = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert names[0] == "disk-only" and names[1].startswith("hot") and "memory" in names[1]
    assert "memory" in model.index(1, 0).data(3)  # the tooltip says what it means


def test_export_notice_gives_a_small_size_in_kib(qtbot, window, tmp_path: Path) -> None:
    result = exchange.ExportResult(tmp_path / "x.vmlstate", 10 * 1024, True, "s" * 64, None, None, ())
    window.projects_controller._exported(result)
    text = window.projects_controller.last_notice.text()
    assert "10.0 KiB" in text and "0.0 MB" not in text


def test_free_project_name() -> None:
    assert free_name("higgs", ["other"]) == "higgs"
    assert free_name("higgs", ["higgs", "higgs-2"]) == "higgs-3"


@dataclass
class Signer:
    name: str = "anna@lab"
    fingerprint: str = "f" * 32
    public_key: str = ""
    known: bool = False
    known_as: str | None = None


@dataclass
class About:
    state: dict[str, Any] = field(default_factory=lambda: {"id": "s" * 64, "project": "higgs", "author": "anna"})
    base: dict[str, Any] = field(default_factory=lambda: {"name": "tiny", "version": "1", "size": 1024})
    base_in_store: bool = True
    since: dict[str, Any] | None = None
    disks: list[dict[str, Any]] = field(default_factory=list)
    memory: bool = False
    signer: Signer | None = field(default_factory=Signer)
    signature: str = "signed by anna@lab (unknown key, fingerprint ffff)"
    own_key: bool = False


def test_import_proposes_a_free_project_name_and_knows_your_own_key(qtbot) -> None:
    dialog = ImportDialog(None, "x.vmlstate", About(), ["higgs"], "higgs")
    qtbot.addWidget(dialog)
    assert dialog.project_name.text() == "higgs-2"
    assert not dialog.trusted and dialog.ok.text() == "Import anyway"
    own = ImportDialog(None, "x.vmlstate", About(own_key=True), [], None)
    qtbot.addWidget(own)
    assert own.trusted and "unknown" not in own.signature.text() and "you" in own.signature.text()
    assert not own.remember.isVisibleTo(own) and own.ok.text() == "Import"


def test_releases_page_speaks_of_mounting(qtbot) -> None:
    page = ReleasesPage()
    qtbot.addWidget(page)
    tabs = [page.tabs.tabText(i) for i in range(page.tabs.count())]
    assert tabs[0] == "Mounted" and "Running" not in tabs
    assert page.start.text() == "Mount" and page.customize.text() == "Customize && Mount…"
    assert page.unmount.text() == "Unmount"
