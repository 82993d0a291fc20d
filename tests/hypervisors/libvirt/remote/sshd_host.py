"""A real remote libvirt for the tests: an ``sshd`` of the test's own on 127.0.0.1 in front of this machine's daemon.

The test makes a host key and a client key, starts ``/usr/sbin/sshd`` with a config of its own (root may log in
with the test's key only, no PAM, everything under the test's directory), and hands out the URI
``qemu+ssh://root@127.0.0.1:PORT/system?keyfile=KEY&no_verify=1&no_tty=1``. libvirt's client runs ``ssh``, which
runs ``virt-ssh-helper`` (Debian's libvirt-daemon) or, failing that, ``nc`` on the far side; ``no_tty=1`` makes
``ssh`` fail instead of asking for a password. Where sshd, ssh or the daemon is missing the tests skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
DAEMON_SOCKET = Path("/var/run/libvirt/libvirt-sock")
PRIVSEP_DIR = Path("/run/sshd")
KNOWN_HOSTS = Path("~root/.ssh/known_hosts").expanduser()


@dataclass(frozen=True)
class RemoteHost:
    """The sshd the test started and how to reach the daemon behind it."""

    uri: str
    port: int
    keyfile: Path
    directory: Path

    def ssh(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a command on the "remote" host the way libvirt's client reaches it."""
        return subprocess.run(
            ["ssh", "-p", str(self.port), "-i", str(self.keyfile), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.directory / 'known_hosts'}",
             "root@127.0.0.1", *command],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _why_no_sshd() -> str | None:
    if os.geteuid() != 0:
        return "the remote-libvirt tests log in as root through an sshd of their own: run them as root"
    if not SSHD.is_file():
        return f"{SSHD} is missing: apt-get install -y openssh-server"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: apt-get install -y openssh-client"
    if not DAEMON_SOCKET.exists():
        return f"no libvirt daemon here ({DAEMON_SOCKET} is missing): start libvirtd"
    return None


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmlog-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=60)


def _sshd_config(directory: Path, port: int) -> Path:
    config = directory / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\nPidFile {directory / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {directory / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AllowTcpForwarding local\nPermitOpen 127.0.0.1:*\nX11Forwarding no\nPrintMotd no\nLogLevel VERBOSE\n"
    )
    return config


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"sshd exited with status {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return None
        except OSError:
            time.sleep(0.1)
    return f"sshd did not listen on 127.0.0.1:{port} within {timeout:g} s"


def _forget_host_key(port: int) -> None:
    """libvirt's ``no_verify=1`` lets ``ssh`` add the test's host key to root's known_hosts: take it out again."""
    if not KNOWN_HOSTS.is_file():
        return
    backup = KNOWN_HOSTS.with_name(KNOWN_HOSTS.name + ".old")
    had_backup = backup.exists()
    subprocess.run(["ssh-keygen", "-R", f"[127.0.0.1]:{port}", "-f", str(KNOWN_HOSTS)],
                   capture_output=True, timeout=60, check=False)
    if not had_backup:
        backup.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def remote_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteHost]:
    """An sshd on a free port of 127.0.0.1 that lets root in with a key made here; stopped after the session."""
    reason = _why_no_sshd()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("remote-host")
    directory.chmod(0o700)
    _keygen(directory / "host_key")
    _keygen(directory / "client_key")
    shutil.copyfile(directory / "client_key.pub", directory / "authorized_keys")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # sshd refuses to start without its privilege-separation dir
    port = _free_port()
    config = _sshd_config(directory, port)
    log = (directory / "sshd.log").open("wb")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        problem = _wait_for_port(port, proc)
        if problem:
            pytest.skip(f"{problem}: {(directory / 'sshd.log').read_text(errors='replace')[-500:]}")
        keyfile = directory / "client_key"
        uri = f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={keyfile}&no_verify=1&no_tty=1"
        yield RemoteHost(uri=uri, port=port, keyfile=keyfile, directory=directory)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        _forget_host_key(port)


@pytest.fixture
def remote_conn(remote_host: RemoteHost) -> Iterator[object]:
    """A libvirt connection to the daemon over the test's sshd."""
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open(remote_host.uri)
    try:
        yield conn
    finally:
        conn.close()
