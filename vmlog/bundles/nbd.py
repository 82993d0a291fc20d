"""A minimal NBD client over a ``qemu-nbd`` unix socket, to read and write guest bytes of any image.

The delta builder must compare the guest view of a chain top with the guest view of the base only
where the chain has allocations, without flattening gigabytes to raw first. qemu-nbd serves any
format (and its backing chain) over a unix socket, no kernel module or root needed; this client
speaks just enough of the protocol (fixed newstyle, EXPORT_NAME, simple replies) to read, write
and write zeroes. Only trusted, vmlog-made images are opened this way. The server gets
``PR_SET_PDEATHSIG``: it dies with the vmlog process (thread) that started it.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from hypervisors import qemu_img
from vmlog.errors import VmlogError

_NBDMAGIC = b"NBDMAGIC"
_IHAVEOPT = 0x49484156454F5054
_REQUEST_MAGIC = 0x25609513
_REPLY_MAGIC = 0x67446698
_NBD_ENOSPC = 28  # NBD protocol error value for a full disk (the same number as Linux ENOSPC)
_FLAG_FIXED_NEWSTYLE = 1
_FLAG_NO_ZEROES = 2
_OPT_EXPORT_NAME = 1
_CMD_READ, _CMD_WRITE, _CMD_DISC, _CMD_FLUSH, _CMD_WRITE_ZEROES = 0, 1, 2, 3, 6
_TFLAG_SEND_WRITE_ZEROES = 1 << 6
MAX_REQUEST = 16 << 20
# Unanswered writes at most: qemu-nbd serves 16 requests at a time and stops reading the socket while
# its replies wait, so more small writes in flight would block both sides, each sending to the other.
MAX_BEHIND = 8
EXPORT = "vmlog"


class NbdError(VmlogError):
    """qemu-nbd could not serve an image, or the connection broke."""

    exit_code = 41


class NbdImage:
    """A connected qemu-nbd export of one image: ``read``, ``write``, ``write_zeroes``, ``close``.

    Use as a context manager; leaving it disconnects and stops the server process.
    """

    def __init__(self, path: Path, fmt: str, *, writable: bool = False, timeout: float = 30.0) -> None:
        binary = shutil.which("qemu-nbd")
        if binary is None:
            raise NbdError("qemu-nbd is not installed", fix="apt-get install qemu-utils")
        # the directory names this process, so `vml doctor --repair` knows whose it was after a kill -9
        self._tmp = tempfile.TemporaryDirectory(prefix=f"vmlog-nbd-{os.getpid()}-")
        sock_path = Path(self._tmp.name) / "nbd.sock"
        args = [binary, "-k", str(sock_path), "-f", fmt, "-x", EXPORT, "--cache=writeback"]
        if not writable:
            args.append("-r")
        self._proc = subprocess.Popen(  # ends with vmlog, even when vmlog is killed (PR_SET_PDEATHSIG)
            [*args, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=qemu_img.die_with_parent,
        )
        self._handle = 0
        self._inflight: dict[int, tuple[int, int, int]] = {}  # handle -> (command, offset, length)
        self._early: dict[int, bytes] = {}  # replies that came before the one awaited
        self._behind: deque[tuple[int, int]] = deque()  # writes sent and not yet answered: (handle, length)
        self._behind_bytes = 0
        self._sock = self._connect(sock_path, timeout)
        try:
            self.size, self._tflags = self._negotiate()
        except BaseException:
            self.close()
            raise

    def _connect(self, sock_path: Path, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                detail = self._proc.stderr.read().strip() if self._proc.stderr else ""
                self._tmp.cleanup()
                raise NbdError(f"qemu-nbd exited before serving the image: {detail}")
            if sock_path.exists():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(sock_path))
                    return sock
                except OSError:
                    sock.close()
            if time.monotonic() > deadline:
                self._proc.kill()
                self._tmp.cleanup()
                raise NbdError("qemu-nbd did not start listening in time")
            time.sleep(0.01)

    def _recv(self, n: int) -> bytes:
        view = bytearray(n)
        mv = memoryview(view)
        got = 0
        while got < n:
            k = self._sock.recv_into(mv[got:], n - got)
            if k == 0:
                raise NbdError("qemu-nbd closed the connection")
            got += k
        return bytes(view)

    def _negotiate(self) -> tuple[int, int]:
        if self._recv(8) != _NBDMAGIC:
            raise NbdError("not an NBD server")
        magic, hflags = struct.unpack(">QH", self._recv(10))
        if magic != _IHAVEOPT or not hflags & _FLAG_FIXED_NEWSTYLE:
            raise NbdError("the NBD server does not speak fixed newstyle")
        cflags = _FLAG_FIXED_NEWSTYLE | (hflags & _FLAG_NO_ZEROES)
        name = EXPORT.encode()
        self._sock.sendall(struct.pack(">IQII", cflags, _IHAVEOPT, _OPT_EXPORT_NAME, len(name)) + name)
        size, tflags = struct.unpack(">QH", self._recv(10))
        if not cflags & _FLAG_NO_ZEROES:
            self._recv(124)
        return size, tflags

    def _send(self, cmd: int, offset: int, length: int, payload: bytes | memoryview = b"") -> int:
        self._handle += 1
        self._sock.sendall(struct.pack(">IHHQQI", _REQUEST_MAGIC, 0, cmd, self._handle, offset, length))
        if payload:
            self._sock.sendall(payload)
        self._inflight[self._handle] = (cmd, offset, length)
        return self._handle

    def _reply(self, handle: int) -> bytes:
        """The reply to request ``handle``; replies to other requests in flight that come first are kept for them."""
        while handle not in self._early:
            magic, error, got = struct.unpack(">IIQ", self._recv(16))
            if magic != _REPLY_MAGIC or got not in self._inflight:
                raise NbdError("unexpected NBD reply")
            cmd, offset, length = self._inflight.pop(got)
            if error == _NBD_ENOSPC:  # the file system is full: said as such by the callers' disk-space handling
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if error:
                raise NbdError(f"NBD request {cmd} at offset {offset} failed with error {error}")
            self._early[got] = self._recv(length) if cmd == _CMD_READ else b""
        return self._early.pop(handle)

    def _request(self, cmd: int, offset: int, length: int, payload: bytes = b"") -> bytes:
        return self._reply(self._send(cmd, offset, length, payload))

    def read_many(self, pieces: Iterable[tuple[int, int]], depth: int = 16) -> Iterator[tuple[int, bytes]]:
        """``(offset, bytes)`` of each ``(offset, length)`` piece, in order, with up to ``depth`` reads in flight.

        Why: a delta of scattered 4 KiB writes reads thousands of small extents, and one round trip
        each would cost more than the reading. At most :data:`MAX_REQUEST` bytes are in flight; a
        piece may not be longer. Other requests may be made between two pieces.
        """
        pending: deque[tuple[int, int, int]] = deque()  # (handle, offset, length), in request order
        in_flight = 0
        it = iter(pieces)
        while True:
            while len(pending) < depth and in_flight < MAX_REQUEST and (piece := next(it, None)) is not None:
                offset, length = piece
                if not 0 < length <= MAX_REQUEST:
                    raise ValueError(f"an NBD read of {length} bytes")
                pending.append((self._send(_CMD_READ, offset, length), offset, length))
                in_flight += length
            if not pending:
                return
            handle, offset, length = pending.popleft()
            in_flight -= length
            yield offset, self._reply(handle)

    def read(self, offset: int, length: int) -> bytes:
        self.settle()
        parts = []
        while length > 0:
            n = min(length, MAX_REQUEST)
            parts.append(self._request(_CMD_READ, offset, n))
            offset += n
            length -= n
        return b"".join(parts)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.write_behind(offset, data)
        self.settle()

    def write_behind(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Send a write without waiting for its reply (at most :data:`MAX_REQUEST` bytes stay unanswered).

        Why: an import writes many small records, and waiting for each reply would cost a round trip
        each. At most :data:`MAX_BEHIND` writes stay unanswered. A read of the same bytes must come
        after :meth:`settle`, which also raises a failed write's error.
        """
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            n = min(len(view) - pos, MAX_REQUEST)
            while self._behind and (self._behind_bytes + n > MAX_REQUEST or len(self._behind) >= MAX_BEHIND):
                handle, length = self._behind.popleft()
                self._behind_bytes -= length
                self._reply(handle)
            self._behind.append((self._send(_CMD_WRITE, offset + pos, n, view[pos : pos + n]), n))
            self._behind_bytes += n
            pos += n

    def settle(self) -> None:
        """Wait for the replies of every write sent by :meth:`write_behind`."""
        while self._behind:
            self._reply(self._behind.popleft()[0])
        self._behind_bytes = 0

    def write_zeroes(self, offset: int, length: int) -> None:
        self.settle()
        if not self._tflags & _TFLAG_SEND_WRITE_ZEROES:
            self.write(offset, bytes(length))
            return
        while length > 0:
            n = min(length, 1 << 30)
            self._request(_CMD_WRITE_ZEROES, offset, n)
            offset += n
            length -= n

    def flush(self) -> None:
        self.settle()
        self._request(_CMD_FLUSH, 0, 0)

    def close(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            try:
                sock.sendall(struct.pack(">IHHQQI", _REQUEST_MAGIC, 0, _CMD_DISC, 0, 0, 0))
            except OSError:
                pass
            sock.close()
            self._sock = None
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.terminate()
                self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()
        self._tmp.cleanup()

    def __enter__(self) -> NbdImage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
