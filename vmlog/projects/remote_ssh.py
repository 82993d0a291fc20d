"""SSH to the guest of a project on a remote libvirt host: through that host, as libvirt's own connection goes.

The user-mode network's port forward is opened by QEMU on the host, on the host's loopback: nothing listens
for it here. A ``qemu+ssh://USER@HOST:PORT/...?keyfile=KEY`` URI already says how this machine reaches the host,
so ``ssh`` reaches the forward through it: a ``ProxyCommand`` running ``ssh -W 127.0.0.1:FORWARD`` to the host
with the URI's user, port and key (``-J`` would not pass the key on), and the host key rule of the URI
(``no_verify=1``: not checked, as libvirt then does not either).
"""

from __future__ import annotations

import select
import shlex
import subprocess
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from hypervisors.errors import Unsupported

SSH_TRANSPORTS = ("ssh", "libssh", "libssh2")
GUEST_ADDRESS = "127.0.0.1"  # where the host's QEMU listens for the forward


@dataclass(frozen=True)
class JumpHost:
    """How this machine reaches a libvirt host over SSH, read from the connection's URI."""

    host: str
    user: str | None = None
    port: int | None = None
    keyfile: str | None = None
    no_verify: bool = False
    no_tty: bool = False

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def options(self) -> list[str]:
        """``ssh`` options for the connection to the host itself (its port, key and host key rule)."""
        argv = ["-p", str(self.port)] if self.port else []
        if self.keyfile:
            argv += ["-i", self.keyfile, "-o", "IdentitiesOnly=yes"]
        if self.no_verify:
            argv += ["-o", "StrictHostKeyChecking=no"]
        if self.no_tty:
            argv += ["-o", "BatchMode=yes"]
        return argv

    def forward_to(self, target: str) -> list[str]:
        """The command that connects its stdin/stdout to ``target`` (``ADDRESS:PORT``) as seen from the host."""
        return ["ssh", *self.options(), "-W", target, self.destination]


def jump_host(uri: str) -> JumpHost:
    """The SSH connection of ``uri``; refused for a transport that is not SSH (nothing to go through)."""
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    if transport not in SSH_TRANSPORTS or not parts.hostname:
        raise Unsupported(
            f"the VM's SSH forward listens on the host of {uri}, which vmlog reaches only through an SSH"
            " connection (a qemu+ssh:// URI)",
            fix="log in through the VM's console: `vml console`",
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return JumpHost(host=parts.hostname, user=parts.username, port=parts.port, keyfile=query.get("keyfile"),
                    no_verify=query.get("no_verify") == "1", no_tty=query.get("no_tty") == "1")


def proxy_options(uri: str) -> tuple[str, ...]:
    """``ssh`` options that reach the guest's forward through the host of ``uri`` (the guest is then 127.0.0.1)."""
    command = shlex.join(jump_host(uri).forward_to("%h:%p"))
    return ("-o", f"ProxyCommand={command}")


def guest_banner(uri: str, port: int, timeout: float = 10.0) -> str | None:
    """The guest's SSH version line read through the host of ``uri``, None if nothing SSH answers in time.

    As for a local forward, an open port proves nothing (user-mode NAT accepts it): only the ``SSH-`` line does.
    """
    argv = jump_host(uri).forward_to(f"{GUEST_ADDRESS}:{port}")
    argv[1:1] = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(timeout)}"]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    assert proc.stdout is not None
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in data and len(data) < 256:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                break
            chunk = proc.stdout.read1(256)
            if not chunk:
                break
            data += chunk
    finally:
        proc.kill()
        proc.communicate()
    line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    return line if line.startswith("SSH-") else None
