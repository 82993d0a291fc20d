"""``vml demo``: the local catalog server, the catalog it serves, and the whole demo as a user runs it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors import registry
from vmlog.app import projects
from vmlog.appliances.catalog import Catalogs, parse_catalog
from vmlog.demo import (
    DEMO_CATALOG,
    DEMO_GREETING,
    DEMO_HOSTNAME,
    LocalFileServer,
    catalog_document,
    served_catalog,
)
from vmlog.testappliance.build import APPLIANCE_NAME, appliance_metadata
from vmlog.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_local_file_server_serves_files_and_ranges(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4096)
    with LocalFileServer({"blob.bin": blob, "note.txt": b"hello\n"}) as server:
        status, body, _ = _get(server.url("blob.bin"))
        assert status == 200 and body == blob.read_bytes()
        status, body, headers = _get(server.url("blob.bin"), {"Range": "bytes=1000-"})
        assert status == 206 and body == blob.read_bytes()[1000:]
        assert headers["Content-Range"] == f"bytes 1000-{blob.stat().st_size - 1}/{blob.stat().st_size}"
        assert _get(server.url("note.txt"), {"Range": "bytes=1-2"})[:2] == (206, b"el")
        assert _get(server.url("missing"))[0] == 404


def test_catalog_document_is_a_valid_vmlog_catalog() -> None:
    meta = {"version": "1.0", "min_memory_mib": 256, "size": 1234, "sha256": "ab" * 32}
    (appliance,) = parse_catalog(catalog_document("http://127.0.0.1:1/x.raw", meta), source="demo")
    version = appliance.resolve(None)
    image = version.images["raw"]
    assert appliance.name == APPLIANCE_NAME and version.context == "nocloud"
    assert image.urls == ("http://127.0.0.1:1/x.raw",) and image.size == 1234
    assert image.digest == ("sha256", "ab" * 32)
    assert version.boot["agent"] == "vmlog"


def test_served_catalog_is_recorded_while_served_and_forgotten_after(
    vmlog_home: Path, test_appliance_image: Path
) -> None:
    catalogs = Catalogs(vmlog_home / "config")
    with served_catalog(test_appliance_image, Workspace.default()) as url:
        assert [e.name for e in catalogs.entries()] == [DEMO_CATALOG]
        appliance = catalogs.get(APPLIANCE_NAME)  # the served one wins over the built-in builder
        assert appliance.catalog == DEMO_CATALOG and not appliance.local_builder
        image = appliance.resolve(None).images["raw"]
        assert image.digest == ("sha256", appliance_metadata(test_appliance_image)["sha256"])
        assert _get(url)[0] == 200
        assert _get(image.urls[0], {"Range": "bytes=0-511"})[1] == test_appliance_image.read_bytes()[:512]
    assert catalogs.entries() == []
    assert catalogs.problems == []


# -- the demo as a user runs it ---------------------------------------------------------------------


@pytest.fixture
def demo_home() -> Iterator[Path]:
    """An empty vmlog home with a short path (the VM's agent socket must fit a Unix socket path)."""
    root = Path(tempfile.mkdtemp(prefix="vml-demo-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _vml(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VMLOG_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.vm
def test_vml_demo_sets_up_the_appliance_and_shows_the_guest_answering(
    demo_home: Path, test_appliance_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not registry.probe("kvm").available:
        pytest.skip("the kvm backend does not work here")
    monkeypatch.setenv("VMLOG_HOME", str(demo_home))
    kernel = appliance_metadata(test_appliance_image)["kernel"]
    try:
        first = _vml(demo_home, "demo", "--build-cache", str(test_appliance_image.parent))
        assert first.returncode == 0, first.stderr
        assert "created and booted" in first.stdout
        assert DEMO_HOSTNAME in first.stdout  # the guest's hostname, set by the seed
        assert DEMO_GREETING in first.stdout  # the file user-data wrote, read back from the guest
        assert kernel and kernel in first.stdout
        assert "vml state save" in first.stdout and "vml down" in first.stdout
        for phase in ("backend", "download", "verify", "project", "contextualise", "boot", "ready"):
            assert phase in first.stderr

        again = _vml(demo_home, "demo", "--build-cache", str(test_appliance_image.parent))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout and DEMO_GREETING in again.stdout
        assert "warning" not in again.stderr

        assert _vml(demo_home, "catalog", "list", "--json").stdout.strip() == "[]"
        status = _vml(demo_home, "status", "demo", "--json")
        assert '"vm": "running"' in status.stdout
    finally:
        ctx = Workspace.default()
        if "demo" in ctx.projects.names():
            projects.remove_project("demo", ctx=ctx)


@pytest.mark.vm
def test_ctrl_c_during_the_boot_leaves_a_whole_project_that_a_rerun_finishes(
    demo_home: Path, test_appliance_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not registry.probe("kvm").available:
        pytest.skip("the kvm backend does not work here")
    monkeypatch.setenv("VMLOG_HOME", str(demo_home))
    cache = str(test_appliance_image.parent)
    env = {**os.environ, "VMLOG_HOME": str(demo_home), "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vmlog.cli.main", "demo", "--build-cache", cache],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    try:
        seen = ""
        assert process.stderr is not None
        while "contextualise" not in seen:  # the project exists and has its seed
            line = process.stderr.readline()
            assert line, f"the demo ended early: {seen}"
            seen += line
        process.send_signal(signal.SIGINT)
        _out, rest = process.communicate(timeout=300)
        assert process.returncode == 130, seen + rest
        assert "cancelling" in rest
        ctx = Workspace.default()
        assert ctx.projects.names() == ["demo"]
        assert Catalogs(ctx.home.config).entries() == []  # the served catalog was forgotten

        again = _vml(demo_home, "demo", "--build-cache", cache)
        assert again.returncode == 0, again.stderr
        assert DEMO_GREETING in again.stdout and "created" not in again.stdout
    finally:
        if process.poll() is None:
            process.kill()
        ctx = Workspace.default()
        if "demo" in ctx.projects.names():
            projects.remove_project("demo", ctx=ctx)
