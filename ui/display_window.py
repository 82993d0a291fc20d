"""A window with a project's VM screen: the embedded view, Ctrl+Alt+Del, and a way out to the standard viewer."""

from __future__ import annotations

import subprocess

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ui.display_view import DisplayView
from ui.rfb import RfbClient


class DisplayWindow(QWidget):
    """One project's screen; closing the window closes the connection (the VM keeps running)."""

    def __init__(self, parent: QWidget | None, project: str, uri: str, viewer: list[str] | None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle(f"{project} — screen")
        self.setObjectName("display-window")
        self.viewer = viewer
        self.view = DisplayView(self)
        self.status = QLabel(f"Connecting to {uri}…")
        self.status.setObjectName("muted")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        cad = QPushButton("Ctrl+Alt+Del")
        cad.setToolTip("Send Ctrl+Alt+Del to the machine")
        cad.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        cad.clicked.connect(self.view.send_ctrl_alt_del)
        self.open_viewer = QPushButton("Open in viewer")
        self.open_viewer.setToolTip("Show the screen in remote-viewer (virt-viewer) instead")
        self.open_viewer.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.open_viewer.setEnabled(viewer is not None)
        self.open_viewer.clicked.connect(self.launch_viewer)
        bar = QHBoxLayout()
        bar.addWidget(self.status, 1)
        bar.addWidget(cad)
        bar.addWidget(self.open_viewer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(bar)
        layout.addWidget(self.view, 1)
        self.view.lost.connect(self._lost)
        self.resize(820, 660)

    def attach(self, client: RfbClient) -> None:
        self.view.attach(client)
        self.status.setText(f"{client.name or 'screen'} · {client.width}×{client.height} · click to type")
        self.view.setFocus()

    def failed(self, reason: str) -> None:
        self.status.setText(f"Cannot show the screen here: {reason}")

    def _lost(self, reason: str) -> None:
        self.status.setText(f"The screen went away ({reason}); the machine may have stopped.")

    def launch_viewer(self) -> None:
        if self.viewer:
            subprocess.Popen(self.viewer, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.view.detach()
        super().closeEvent(event)
