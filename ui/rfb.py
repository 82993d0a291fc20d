"""A small VNC (RFB 3.3-3.8) client: reads a VM's framebuffer and sends it keys and pointer moves.

Enough of RFC 6143 for the VNC server of a local QEMU: security type None, 32-bit true colour in the
byte order of ``QImage.Format_RGB32`` (B, G, R, X), the Raw and CopyRect encodings, and the DesktopSize
pseudo-encoding for guests that change resolution. It has no Qt in it, so the window's display view
and the tests drive the same code; one thread reads (:meth:`RfbClient.read_message`), any thread sends.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

RAW, COPY_RECT, DESKTOP_SIZE = 0, 1, -223
SECURITY_NONE = 1
BYTES_PER_PIXEL = 4
# bpp, depth, big-endian, true-colour, red/green/blue max, red/green/blue shift: 0x00RRGGBB little-endian
PIXEL_FORMAT = struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)


class RfbError(Exception):
    """The server refused us or spoke something this client does not understand."""


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int


class RfbClient:
    """One connection to a VNC server; ``framebuffer`` holds the screen as B, G, R, X bytes, row after row."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.width = self.height = 0
        self.name = ""
        self.framebuffer = bytearray()
        self.lock = threading.Lock()  # held while the framebuffer changes, and around every send
        self._buttons = 0

    # -- connecting --------------------------------------------------------------------------
    @classmethod
    def connect(cls, host: str | None = None, port: int | None = None, *, unix_socket: Path | None = None,
                timeout: float = 10.0) -> RfbClient:
        if unix_socket is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(unix_socket))
        else:
            sock = socket.create_connection((host or "127.0.0.1", int(port or 5900)), timeout=timeout)
        client = cls(sock)
        try:
            client.handshake()
        except BaseException:
            sock.close()
            raise
        return client

    def handshake(self) -> None:
        version = self._read(12)
        if not version.startswith(b"RFB "):
            raise RfbError(f"not a VNC server (it said {version!r})")
        major, minor = int(version[4:7]), int(version[8:11])
        minor = 8 if (major, minor) >= (3, 8) else (7 if (major, minor) >= (3, 7) else 3)
        self.sock.sendall(b"RFB 003.%03d\n" % minor)
        if minor == 3:
            kind = struct.unpack(">I", self._read(4))[0]
            if kind != SECURITY_NONE:
                raise RfbError(self._reason() if kind == 0 else f"the server asks security type {kind}")
        else:
            count = self._read(1)[0]
            if count == 0:
                raise RfbError(self._reason())
            if SECURITY_NONE not in self._read(count):
                raise RfbError("the server asks for a password; vmlog's VMs serve their screen without one")
            self.sock.sendall(bytes([SECURITY_NONE]))
            if minor == 8 and struct.unpack(">I", self._read(4))[0] != 0:
                raise RfbError(self._reason())
        self.sock.sendall(b"\x01")  # shared: other viewers stay connected
        width, height = struct.unpack(">HH", self._read(4))
        self._read(16)  # the server's pixel format; ours follows
        self.name = self._read(struct.unpack(">I", self._read(4))[0]).decode("utf-8", "replace")
        self._resize(width, height)
        self._send(b"\x00\x00\x00\x00" + PIXEL_FORMAT)
        encodings = (RAW, COPY_RECT, DESKTOP_SIZE)
        self._send(struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings))

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # -- reading the screen ------------------------------------------------------------------
    def request_update(self, incremental: bool = True) -> None:
        self._send(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self.width, self.height))

    def read_message(self) -> list[Rect]:
        """Read one server message; returns the rectangles of the screen it changed (empty for others)."""
        kind = self._read(1)[0]
        if kind == 0:
            return self._framebuffer_update()
        if kind == 1:  # colour map entries: not used in true colour, read past them
            _first, count = struct.unpack(">xHH", self._read(5))
            self._read(count * 6)
        elif kind == 2:  # bell
            pass
        elif kind == 3:  # the guest's clipboard
            self._read(struct.unpack(">3xI", self._read(7))[0])
        else:
            raise RfbError(f"unknown server message {kind}")
        return []

    def _framebuffer_update(self) -> list[Rect]:
        count = struct.unpack(">xH", self._read(3))[0]
        changed = []
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", self._read(12))
            if encoding == RAW:
                self._blit(x, y, w, h, self._read(w * h * BYTES_PER_PIXEL))
            elif encoding == COPY_RECT:
                sx, sy = struct.unpack(">HH", self._read(4))
                self._copy(sx, sy, x, y, w, h)
            elif encoding == DESKTOP_SIZE:
                self._resize(w, h)
                x, y = 0, 0
            else:
                raise RfbError(f"the server sent encoding {encoding}, which was not asked for")
            changed.append(Rect(x, y, w, h))
        return changed

    def _resize(self, width: int, height: int) -> None:
        with self.lock:
            self.width, self.height = width, height
            self.framebuffer = bytearray(width * height * BYTES_PER_PIXEL)

    def _blit(self, x: int, y: int, w: int, h: int, pixels: bytes) -> None:
        stride, row = self.width * BYTES_PER_PIXEL, w * BYTES_PER_PIXEL
        with self.lock:
            for line in range(h):
                start = (y + line) * stride + x * BYTES_PER_PIXEL
                self.framebuffer[start : start + row] = pixels[line * row : (line + 1) * row]

    def _copy(self, sx: int, sy: int, x: int, y: int, w: int, h: int) -> None:
        stride, row = self.width * BYTES_PER_PIXEL, w * BYTES_PER_PIXEL
        with self.lock:
            lines = [bytes(self.framebuffer[(sy + i) * stride + sx * 4 : (sy + i) * stride + sx * 4 + row])
                     for i in range(h)]
            for i, data in enumerate(lines):
                start = (y + i) * stride + x * BYTES_PER_PIXEL
                self.framebuffer[start : start + row] = data

    def snapshot(self) -> tuple[int, int, bytes]:
        """(width, height, B-G-R-X bytes) of the screen as last read."""
        with self.lock:
            return self.width, self.height, bytes(self.framebuffer)

    def read_screen(self, *, rounds: int = 50) -> tuple[int, int, bytes]:
        """Ask for the whole screen and read until it came (for one-off pictures, as tests take them)."""
        self.request_update(incremental=False)
        for _ in range(rounds):
            if self.read_message():
                break
        return self.snapshot()

    # -- keyboard and pointer ----------------------------------------------------------------
    def key(self, keysym: int, down: bool) -> None:
        self._send(struct.pack(">BBxxI", 4, int(down), keysym))

    def press(self, keysym: int) -> None:
        self.key(keysym, True)
        self.key(keysym, False)

    def type_text(self, text: str) -> None:
        """Type ``text``: printable Latin-1 characters, and newlines as Return."""
        for char in text:
            self.press(0xFF0D if char == "\n" else ord(char))

    def pointer(self, x: int, y: int, buttons: int | None = None) -> None:
        """Move the pointer to (x, y) with ``buttons`` down (bit 0 left, 1 middle, 2 right; 3/4 the wheel)."""
        if buttons is not None:
            self._buttons = buttons
        x = max(0, min(self.width - 1, x))
        y = max(0, min(self.height - 1, y))
        self._send(struct.pack(">BBHH", 5, self._buttons, x, y))

    # -- the wire ------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def _read(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise RfbError("the VNC server closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _reason(self) -> str:
        return self._read(struct.unpack(">I", self._read(4))[0]).decode("utf-8", "replace")
