"""A VNC server speaking the server side of RFB 3.8 (security None, Raw), for the display tests without a VM."""

from __future__ import annotations

import socket
import struct
import threading


class FakeVncServer:
    """Serves a ``width`` x ``height`` screen filled with one colour; records the key and pointer events."""

    def __init__(self, width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 10)) -> None:
        self.width, self.height, self.colour = width, height, colour
        self.keys: list[tuple[int, bool]] = []
        self.pointer: list[tuple[int, int, int]] = []
        self.got = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"RFB 003.008\n")
            assert conn.recv(12) == b"RFB 003.008\n"
            conn.sendall(b"\x01\x01")  # one security type: None
            assert self._read(conn, 1) == b"\x01"
            conn.sendall(struct.pack(">I", 0))
            self._read(conn, 1)  # shared flag
            name = b"fake guest"
            conn.sendall(struct.pack(">HH16xI", self.width, self.height, len(name)) + name)
            try:
                while True:
                    kind = self._read(conn, 1)[0]
                    if kind == 0:
                        self._read(conn, 19)
                    elif kind == 2:
                        count = struct.unpack(">xH", self._read(conn, 3))[0]
                        self._read(conn, 4 * count)
                    elif kind == 3:
                        self._read(conn, 9)
                        r, g, b = self.colour
                        pixels = bytes([b, g, r, 0]) * (self.width * self.height)
                        conn.sendall(struct.pack(">BxHHHHHi", 0, 1, 0, 0, self.width, self.height, 0) + pixels)
                    elif kind == 4:
                        down, key = struct.unpack(">BxxI", self._read(conn, 7))
                        self.keys.append((key, bool(down)))
                        self.got.set()
                    elif kind == 5:
                        mask, x, y = struct.unpack(">BHH", self._read(conn, 5))
                        self.pointer.append((x, y, mask))
                        self.got.set()
            except ConnectionError:
                return

    @staticmethod
    def _read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def close(self) -> None:
        self.listener.close()
