"""The Releases page's controller: waits for the release-mount service; until then says how to get releases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

if TYPE_CHECKING:
    from ui.main_window import MainWindow


class ReleasesController(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.page = window.releases_page
        try:
            from vmlog.releases import service  # type: ignore[attr-defined]  # noqa: F401
        except ImportError:
            self.page.tabs.setEnabled(False)
            self.page.tabs.setToolTip("Release mounts arrive with the release-mount service.")
