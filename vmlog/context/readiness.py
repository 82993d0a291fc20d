"""How a project's guest shows it is ready: agent and cloud-init done, an SSH banner, or a console marker.

Every wait polls in short slices so a cancel request is seen within a second, and gives up early
when the VM stopped or crashed instead of waiting for a guest that will never answer. A check may
say what it saw last (``seen``), so a timeout tells the user how far the guest got.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hypervisors.errors import ReportableError, Unsupported
from hypervisors.guest import GuestAgent
from vmlog.context.guest import cloud_init_finished
from vmlog.errors import Cancelled, VmlogError

SLICE = 1.0


class GuestNotReady(VmlogError):
    """The VM runs but its guest did not report ready in time (or it stopped while booting)."""

    exit_code = 80


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice), for a port forward."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ssh_banner(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> str | None:
    """The SSH server's version line on ``host:port``, or None if nothing SSH answers there.

    A user-mode NAT forward accepts the connection even when the guest has no SSH server, so an
    open port proves nothing: only the ``SSH-`` banner does.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    return line if line.startswith("SSH-") else None


def console_has(log: Path | None, marker: str) -> bool:
    """True if the guest printed ``marker`` on its serial console since the log was started."""
    if log is None or not Path(log).is_file():
        return False
    return marker.encode() in Path(log).read_bytes()[-1024 * 1024 :]


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], str | None],
    cancel: threading.Event | None,
    fix: str,
) -> None:
    """Poll ``check`` until it is true; ``alive`` returns why the VM cannot become ready (or None)."""
    deadline = time.monotonic() + timeout
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"stopped waiting for {what}")
        if check():
            return
        seen = getattr(check, "seen", "")
        seen_text = f"; last seen: {seen}" if seen else ""
        dead = alive()
        if dead:
            raise GuestNotReady(f"the VM {dead} while waiting for {what}{seen_text}", fix=fix)
        if time.monotonic() >= deadline:
            raise GuestNotReady(f"no sign of {what} within {timeout:.0f} s{seen_text}", fix=fix)
        if cancel is not None:
            cancel.wait(SLICE)
        else:
            time.sleep(SLICE)


class GuestReadyCheck:
    """Ready when the guest agent answers and cloud-init finished; ``seen`` says how far it got."""

    def __init__(
        self, agent: GuestAgent, *, cloud_init: bool = True, fallback: Callable[[], bool] | None = None
    ) -> None:
        """``fallback`` (e.g. an SSH banner check) decides where the agent cannot ask the guest about cloud-init.

        Without one, an agent that answers but runs no guest commands (Guest Additions or VMware
        Tools without a guest login) counts as ready.
        """
        self.agent = agent
        self.cloud_init = cloud_init
        self.fallback = fallback
        self.seen = "no answer from the guest agent yet"

    def __call__(self) -> bool:
        try:
            self.agent.ping(timeout=SLICE * 2)
        except Unsupported:
            raise
        except ReportableError as exc:
            self.agent.close()
            self.seen = f"no answer from the guest agent ({exc.message})"
            return False
        if not self.cloud_init:
            return True
        try:
            done = cloud_init_finished(self.agent)
        except Unsupported as exc:  # the agent has no guest login to run commands with
            if self.fallback is None:
                self.seen = f"the guest agent answers (cloud-init not checked: {exc.message})"
                return True
            done = self.fallback()
            self.seen = "ready" if done else f"the guest agent answers; cloud-init cannot be asked ({exc.message})"
            return done
        except ReportableError as exc:
            self.seen = f"the guest agent answers, but asking it about cloud-init failed ({exc.message})"
            return False
        self.seen = "the guest agent answers; cloud-init has not finished" if not done else "ready"
        return done


def agent_answers(agent: GuestAgent) -> GuestReadyCheck:
    """A check that pings the guest agent once (a short wait: the caller loops)."""
    return GuestReadyCheck(agent, cloud_init=False)
