"""A window with a project's VM screen: the embedded view, Ctrl+Alt+Del, and a way out to the standard viewer.

The view here speaks VNC. Where the VM serves its screen by SPICE too (the host's QEMU has it), the way
out offers the choice: SPICE opens in ``remote-viewer``, and the choice is kept for next time (what
``vml display --protocol spice --prefer`` keeps).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ui.display_view import DisplayView
from ui.rfb import RfbClient


class DisplayWindow(QWidget):
    """One project's screen; closing the window closes the connection (the VM keeps running)."""

    def __init__(self, parent: QWidget | None, project: str, uri: str, viewer: list[str] | None,
                 viewers: dict[str, list[str] | None] | None = None, *, preferred: str = "vnc",
                 on_choice: Callable[[str], object] | None = None) -> None:
        """``viewer`` opens the screen in the standard viewer; ``viewers`` (by protocol, when the VM serves
        more than VNC) lets the user choose, starting from ``preferred``; ``on_choice`` keeps a choice."""
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle(f"{project} — screen")
        self.setObjectName("display-window")
        self.viewers = {p: v for p, v in (viewers or {}).items() if v} or ({"vnc": viewer} if viewer else {})
        self.on_choice = on_choice
        self.view = DisplayView(self)
        self.status = QLabel(f"Connecting to {uri}…")
        self.status.setObjectName("muted")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        cad = QPushButton("Ctrl+Alt+Del")
        cad.setToolTip("Send Ctrl+Alt+Del to the machine")
        cad.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        cad.clicked.connect(self.view.send_ctrl_alt_del)
        self.protocol = QComboBox()  # which of the VM's servers the viewer is handed
        self.protocol.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.protocol.setToolTip("The screen in this window is VNC; SPICE opens in remote-viewer (virt-viewer)")
        for key in self.viewers:
            self.protocol.addItem(f"{key.upper()} viewer", key)
        self.protocol.setCurrentIndex(max(0, self.protocol.findData(preferred)))
        self.protocol.setVisible(len(self.viewers) > 1)
        self.protocol.activated.connect(self._chose)
        self.open_viewer = QPushButton("Open in viewer")
        self.open_viewer.setToolTip("Show the screen in remote-viewer (virt-viewer) instead")
        self.open_viewer.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.open_viewer.setEnabled(bool(self.viewers))
        self.open_viewer.clicked.connect(self.launch_viewer)
        bar = QHBoxLayout()
        bar.addWidget(self.status, 1)
        bar.addWidget(cad)
        bar.addWidget(self.protocol)
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

    @property
    def viewer(self) -> list[str] | None:
        """The viewer command for the protocol chosen (VNC unless the VM has more and another is chosen)."""
        return self.viewers.get(self.protocol.currentData() or "vnc") or next(iter(self.viewers.values()), None)

    def _chose(self, _index: int) -> None:
        if self.on_choice is not None:
            self.on_choice(self.protocol.currentData())

    def launch_viewer(self) -> None:
        if self.viewer:
            subprocess.Popen(self.viewer, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.view.detach()
        super().closeEvent(event)
