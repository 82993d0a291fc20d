"""A real OCI registry on 127.0.0.1 for the tests: Debian's docker-registry with TLS (a CA made here) and htpasswd.

One registry per test session. Its access log (the process's output) lets tests count the blob
uploads it received; its storage directory lets them tamper with a stored blob as a hostile
registry would serve it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import PASSWORD, REGISTRY, USER, RunningRegistry, config_file, free_port, make_tls, wait_ready


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if REGISTRY is None or shutil.which("htpasswd") is None:
        pytest.skip("needs Debian's docker-registry and apache2-utils (htpasswd)")
    folder = tmp_path_factory.mktemp("registry")
    ca, cert, key = make_tls(folder)
    htpasswd = folder / "htpasswd"
    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                                       text=True).stdout)
    port = free_port()
    log = folder / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([REGISTRY, "serve", str(config_file(folder, port, cert, key, htpasswd))],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"127.0.0.1:{port}", ca, process, log)
        yield RunningRegistry(f"127.0.0.1:{port}", ca, folder / "storage", log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True)
def no_stored_logins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own auth files and certs.d are not the tests' business."""
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
