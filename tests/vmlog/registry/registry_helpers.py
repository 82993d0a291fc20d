"""The registry the tests start (Debian's docker-registry, TLS with a CA made here, htpasswd) and two-home helpers."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmlog.logbook import Logbook
from vmlog.paths import VmlogHome
from vmlog.projects.store import ProjectStore
from vmlog.store.images import ImageStore
from vmlog.workspace import Workspace

REGISTRY = shutil.which("docker-registry")
USER, PASSWORD = "physicist", "s3cret-passw0rd"
_BLOB_PUT = re.compile(r'"PUT /v2/[^ ]+/blobs/uploads/[^ ]*digest=')


@dataclass(frozen=True)
class RunningRegistry:
    host: str  # 127.0.0.1:PORT
    ca_file: Path
    storage: Path
    log: Path
    user: str = USER
    password: str = PASSWORD

    def blob_puts(self) -> int:
        """Blob uploads completed so far (the closing PUT with ``?digest=``), read from the access log."""
        return len(_BLOB_PUT.findall(self.log.read_text(errors="replace")))

    def blob_file(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (CA file, server cert, server key)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=vmlog test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=folder)
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def config_file(folder: Path, port: int, cert: Path, key: Path, htpasswd: Path) -> Path:
    path = folder / "config.yml"
    path.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: vmlog-test\n    path: {htpasswd}\n"
    )
    return path


def wait_ready(host: str, ca: Path, process: subprocess.Popen, log: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"https://{host}/v2/", context=context, timeout=2)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"docker-registry did not answer on {host}: {log.read_text()[-2000:]}")


def context_at(root: Path) -> Workspace:
    """A workspace on a home at ``root`` (the layout ``VMLOG_HOME=root`` gives), without touching the environment."""
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    h = VmlogHome(config=root / "config", data=root / "data", cache=root / "cache", runtime=root / "run").ensure()
    images = ImageStore(h.images)
    return Workspace(h, images, ProjectStore(h.projects, lambda sha: images.get(sha).path), Logbook(h.logbook))


