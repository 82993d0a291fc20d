"""The VM's screen inside the window: an :class:`ui.rfb.RfbClient` drawn into a widget, keys and mouse sent back.

A reader thread takes the server's updates and asks for the next one; the widget repaints from the
shared framebuffer on the UI thread, scaled to fit with the guest's aspect ratio kept. While the view
has the focus every key goes to the guest, Tab and Return included (nothing of the window reacts).
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.rfb import RfbClient, RfbError

SPECIAL_KEYS = {
    Qt.Key.Key_Return: 0xFF0D, Qt.Key.Key_Enter: 0xFF8D, Qt.Key.Key_Backspace: 0xFF08, Qt.Key.Key_Tab: 0xFF09,
    Qt.Key.Key_Backtab: 0xFF09, Qt.Key.Key_Escape: 0xFF1B, Qt.Key.Key_Delete: 0xFFFF, Qt.Key.Key_Insert: 0xFF63,
    Qt.Key.Key_Home: 0xFF50, Qt.Key.Key_End: 0xFF57, Qt.Key.Key_Left: 0xFF51, Qt.Key.Key_Up: 0xFF52,
    Qt.Key.Key_Right: 0xFF53, Qt.Key.Key_Down: 0xFF54, Qt.Key.Key_PageUp: 0xFF55, Qt.Key.Key_PageDown: 0xFF56,
    Qt.Key.Key_Shift: 0xFFE1, Qt.Key.Key_Control: 0xFFE3, Qt.Key.Key_Alt: 0xFFE9, Qt.Key.Key_Meta: 0xFFEB,
    Qt.Key.Key_CapsLock: 0xFFE5, Qt.Key.Key_Space: 0x20,
    **{getattr(Qt.Key, f"Key_F{n}"): 0xFFBD + n for n in range(1, 13)},
}
BUTTONS = {Qt.MouseButton.LeftButton: 1, Qt.MouseButton.MiddleButton: 2, Qt.MouseButton.RightButton: 4}


def keysym(event: QKeyEvent) -> int | None:
    """The X keysym a key event stands for (what RFB sends), or None for keys it has no name for."""
    special = SPECIAL_KEYS.get(Qt.Key(event.key()))
    if special is not None:
        return special
    text = event.text()
    if len(text) == 1 and (0x20 <= ord(text) <= 0xFF):
        return ord(text)
    key = event.key()
    if 0x20 <= key <= 0x7E:  # with Ctrl held the text is a control character; the key code is the letter
        return ord(chr(key).lower()) if not event.modifiers() & Qt.KeyboardModifier.ShiftModifier else key
    return None


class _Reader(QObject):
    """Reads the server's messages on a thread of its own and says when the screen changed or the link broke."""

    changed = Signal()
    lost = Signal(str)

    def __init__(self, client: RfbClient) -> None:
        super().__init__()
        self.client = client
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="vnc-reader", daemon=True)

    def _run(self) -> None:
        try:
            self.client.request_update(incremental=False)
            while not self.stopping.is_set():
                if self.client.read_message():
                    self.changed.emit()
                    self.client.request_update(incremental=True)
        except (OSError, RfbError) as exc:
            if not self.stopping.is_set():
                self._say_lost(str(exc) or type(exc).__name__)
        except RuntimeError:  # the view went away without detaching (its window was freed): nobody to tell
            return

    def _say_lost(self, reason: str) -> None:
        try:
            self.lost.emit(reason)
        except RuntimeError:
            pass


class DisplayView(QWidget):
    """Shows one VNC server's screen; ``lost(reason)`` when the connection ends (the VM stopped)."""

    lost = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.client: RfbClient | None = None
        self._reader: _Reader | None = None
        self.frames = 0  # screen updates drawn, for whoever wants to know the view is live

    def attach(self, client: RfbClient) -> None:
        """Show ``client``'s screen from now on (the view owns and closes it)."""
        self.detach()
        self.client = client
        self._reader = _Reader(client)
        self._reader.changed.connect(self._on_changed)
        self._reader.lost.connect(self.lost)
        self._reader.thread.start()
        self.update()

    def detach(self) -> None:
        if self._reader is not None:
            self._reader.stopping.set()
        if self.client is not None:
            self.client.close()
            if self._reader is not None:
                self._reader.thread.join(2)
        self.client, self._reader = None, None

    def _on_changed(self) -> None:
        self.frames += 1
        self.update()

    # -- drawing -------------------------------------------------------------------------------
    def target_rect(self) -> QRectF:
        """Where the guest's screen is drawn: as large as fits, aspect ratio kept, centred."""
        client = self.client
        if client is None or not client.width or not client.height:
            return QRectF(self.rect())
        scale = min(self.width() / client.width, self.height() / client.height)
        w, h = client.width * scale, client.height * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def image(self) -> QImage | None:
        if self.client is None or not self.client.width:
            return None
        width, height, pixels = self.client.snapshot()
        return QImage(pixels, width, height, width * 4, QImage.Format.Format_RGB32).copy()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 20, 20))
        image = self.image()
        if image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(self.target_rect(), image)
        painter.end()

    # -- keyboard ------------------------------------------------------------------------------
    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            self.keyPressEvent(event)  # Tab and Backtab too: they must not move the focus away
            return True
        if event.type() == QEvent.Type.ShortcutOverride:
            event.accept()  # the window's shortcuts (Delete, Return, Ctrl+Q...) do not fire while typing here
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self._key(event, True)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        self._key(event, False)

    def _key(self, event: QKeyEvent, down: bool) -> None:
        sym = keysym(event)
        if self.client is not None and sym is not None:
            try:
                self.client.key(sym, down)
            except OSError as exc:
                self.lost.emit(str(exc))
        event.accept()

    def send_ctrl_alt_del(self) -> None:
        if self.client is not None:
            for sym in (0xFFE3, 0xFFE9, 0xFFFF):
                self.client.key(sym, True)
            for sym in (0xFFFF, 0xFFE9, 0xFFE3):
                self.client.key(sym, False)

    # -- pointer ---------------------------------------------------------------------------------
    def guest_position(self, pos: QPointF) -> tuple[int, int] | None:
        """The guest pixel under widget position ``pos`` (None outside the drawn screen)."""
        client, area = self.client, self.target_rect()
        if client is None or not area.contains(pos):
            return None
        return (int((pos.x() - area.x()) * client.width / area.width()),
                int((pos.y() - area.y()) * client.height / area.height()))

    def _pointer(self, event: QMouseEvent, extra: int = 0) -> None:
        at = self.guest_position(event.position())
        if self.client is None or at is None:
            return
        mask = sum(bit for button, bit in BUTTONS.items() if event.buttons() & button) | extra
        try:
            self.client.pointer(at[0], at[1], mask)
        except OSError as exc:
            self.lost.emit(str(exc))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus()
        self._pointer(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._pointer(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self._pointer(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        at = self.guest_position(event.position())
        if self.client is None or at is None:
            return
        bit = 8 if event.angleDelta().y() > 0 else 16
        self.client.pointer(at[0], at[1], bit)
        self.client.pointer(at[0], at[1], 0)
