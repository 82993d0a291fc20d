"""Talk to the test appliance's guest agent over the Unix socket wired to its second serial port.

The hypervisor exposes the guest's ``/dev/ttyS1`` as a Unix socket (QEMU ``-serial
unix:PATH,server=on,wait=off``, libvirt ``<serial type='unix'><source mode='bind' path=.../>``).
The protocol is one ASCII line per message (see docs/test-appliance.md):

    host -> guest: ``PING <id>``, ``RUN <id> <base64 command>``, ``POWEROFF``
    guest -> host: ``HELLO vmlog-testappliance <version>``, ``PONG <id>``,
                   ``OUT <id> <exit code> <base64 output>``, ``BYE``

It is the test appliance's implementation of the guest channel contract
(:class:`hypervisors.guest.GuestAgent`), the same one the standard agents of real guests fulfil.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import os
import shlex
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from hypervisors.guest import ExecResult, GuestAgent, GuestInfo
from vmlog.errors import VmlogError


class GuestAgentError(VmlogError):
    """The guest agent did not answer, answered nonsense, or a command failed."""

    exit_code = 81


class GuestCommandFailed(GuestAgentError):
    """A command run in the guest exited with a non-zero code."""

    exit_code = 82

    def __init__(self, command: str, exit_code: int, output: str) -> None:
        super().__init__(
            f"command {command!r} failed in the guest with exit code {exit_code}: {output.strip()[-2000:]}",
            fix="look at the command's output above",
        )
        self.command = command
        self.command_exit_code = exit_code
        self.output = output


class GuestChannel(GuestAgent):
    """A line channel to the guest agent, reconnecting when the socket is re-created.

    A saved and restored VM gets a new socket at the same path: any send or receive that finds the
    connection gone reconnects once, transparently, and repeats the request. Output is stdout and
    stderr together (the protocol carries one stream), returned as ``ExecResult.stdout``.
    """

    kind: ClassVar[str] = "vmlog-serial"

    def __init__(self, socket_path: Path | str) -> None:
        self.socket_path = Path(socket_path)
        self.version: str | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}{int(time.monotonic() * 1000) % 0xFFFF:x}"

    # -- connection -----------------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
            except OSError as exc:
                sock.close()
                raise GuestAgentError(
                    f"cannot connect to the guest agent socket {self.socket_path}: {exc.strerror or exc}",
                    fix="start the VM with its second serial port on this Unix socket",
                ) from exc
            self._sock = sock
            self._buffer = b""
        return self._sock

    def close(self) -> None:
        """Drop the connection (the guest keeps running; a later call reconnects)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = None
        self._buffer = b""

    def __enter__(self) -> GuestChannel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(self, line: str) -> None:
        self._connect().sendall(line.encode("ascii") + b"\n")

    def _read_line(self, deadline: float) -> str | None:
        """The next line from the guest, or None at the deadline. Raises ConnectionError when the peer closed."""
        sock = self._connect()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionResetError("the guest agent socket was closed")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", errors="replace").strip("\r\0 ")

    def _request(self, line: str, expect: str, request_id: str, timeout: float) -> list[str]:
        """Send ``line`` and return the words of the first reply ``<expect> <request_id> ...``."""
        deadline = time.monotonic() + timeout
        for attempt in (1, 2):
            try:
                self._send(line)
                while True:
                    reply = self._read_line(deadline)
                    if reply is None:
                        raise GuestAgentError(
                            f"the guest agent did not answer {line.split()[0]} within {timeout:.0f} s",
                            fix="check that the guest booted (its serial console log) and is not busy",
                        )
                    words = reply.split()
                    if words[:1] == ["HELLO"] and len(words) >= 3:
                        self.version = words[2]
                    if len(words) >= 2 and words[0] == expect and words[1] == request_id:
                        return words
            except (ConnectionError, BrokenPipeError) as exc:
                self.close()
                if attempt == 2 or time.monotonic() >= deadline:
                    raise GuestAgentError(
                        f"lost the connection to the guest agent on {self.socket_path}: {exc}",
                        fix="check that the VM is still running",
                    ) from exc
        raise AssertionError("unreachable")

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # -- public API -----------------------------------------------------------------------------------

    def ping(self, timeout: float = 5.0) -> None:
        request_id = self._next_id()
        self._request(f"PING {request_id}", "PONG", request_id, timeout)

    def wait_ready(self, timeout: float) -> None:
        """Wait until the socket exists and the guest agent answers a PING."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.ping(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                return
            except GuestAgentError as exc:
                last_error = exc
                if self._sock is None:  # no socket yet: do not spin
                    time.sleep(0.2)
        raise GuestAgentError(
            f"the guest agent on {self.socket_path} did not answer within {timeout:.0f} s ({last_error})",
            fix="check the guest's serial console log: did it boot and print VMLOG-READY?",
        )

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``sh -c command`` in the guest; return its exit code and its stdout+stderr."""
        request_id = self._next_id()
        encoded = base64.b64encode(command.encode()).decode("ascii")
        words = self._request(f"RUN {request_id} {encoded}", "OUT", request_id, timeout)
        try:
            exit_code = int(words[2])
            output = base64.b64decode(words[3] if len(words) > 3 else "", validate=True)
        except (IndexError, ValueError, binascii.Error) as exc:
            raise GuestAgentError(f"the guest agent sent a malformed reply: {' '.join(words)[:200]}") from exc
        return exit_code, output.decode("utf-8", errors="replace")

    def check_output(self, command: str, timeout: float = 60) -> str:
        """Like :meth:`run`, but raise :class:`GuestCommandFailed` on a non-zero exit code."""
        exit_code, output = self.run(command, timeout=timeout)
        if exit_code != 0:
            raise GuestCommandFailed(command, exit_code, output)
        return output

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        command = shlex.join(argv)
        if stdin is not None:
            command = f"printf %s {shlex.quote(base64.b64encode(stdin).decode('ascii'))} | base64 -d | {command}"
        exit_code, output = self.run(command, timeout=timeout)
        return ExecResult(exit_code=exit_code, stdout=output.encode())

    def info(self) -> GuestInfo:
        if self.version is None:
            self.ping()
        return GuestInfo(agent=self.kind, version=self.version or "", commands=("PING", "RUN", "POWEROFF"))

    def shutdown(self) -> None:
        self.poweroff()

    def poweroff(self, timeout: float = 10.0) -> None:
        """Ask the guest to sync its disks and power off; return once it acknowledged."""
        deadline = time.monotonic() + timeout
        try:
            self._send("POWEROFF")
            while (line := self._read_line(deadline)) is not None:
                if line == "BYE":
                    return
        except (ConnectionError, BrokenPipeError):
            return  # the VM is gone already, which is what was asked
        finally:
            self.close()
        raise GuestAgentError(
            f"the guest agent did not acknowledge POWEROFF within {timeout:.0f} s",
            fix="power the VM off from the hypervisor",
        )
