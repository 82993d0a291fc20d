"""Two vmlog homes on one machine and a real HTTP server on 127.0.0.1 serving base images."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vmlog.app import projects
from vmlog.logbook import Logbook
from vmlog.paths import VmlogHome
from vmlog.projects.store import ProjectStore
from vmlog.store.images import ImageStore
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

BOOT_TIMEOUT = 240.0


def home_at(root: Path) -> VmlogHome:
    """The home ``VMLOG_HOME=root`` would give (same layout as :func:`vmlog.paths.home`)."""
    root = root.resolve()
    return VmlogHome(config=root / "config", data=root / "data", cache=root / "cache", runtime=root / "run")


def context_at(root: Path) -> Workspace:
    """A service context on the home at ``root``, without touching ``$VMLOG_HOME``."""
    h = home_at(root).ensure()
    images = ImageStore(h.images)
    return Workspace(
        h, images, ProjectStore(h.projects, lambda sha: images.get(sha).path), Logbook(h.logbook)
    )


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1; yields the base URL (no trailing slash)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def vml(home: Path, *args: str, stdin: int | None = subprocess.DEVNULL, timeout: float = 600, **env: str):
    """Run the real ``vml`` entry point in a child process for one home (no TTY: stdin is /dev/null)."""
    environment = {**os.environ, "VMLOG_HOME": str(home), "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args],
        env=environment,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def two_libvirt_users(prefix: str) -> Iterator[tuple[Workspace, Workspace]]:
    """Two vmlog homes (two users) on this machine's libvirt; skips where libvirt is not usable.

    The homes sit in a short temp dir (the guest channel's Unix socket path must fit 108 bytes) and
    every project of both is removed afterwards, so no libvirt domain leaks when a test fails.
    """
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except ImportError as exc:
        pytest.skip(f"libvirt is not usable here: {exc}")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    a, b = context_at(root / "a"), context_at(root / "b")
    try:
        yield a, b
    finally:
        for ctx in (a, b):
            for name in ctx.projects.names():
                try:
                    projects.remove_project(name, ctx=ctx)
                except Exception:
                    pass
        shutil.rmtree(root, ignore_errors=True)


def guest(ctx: Workspace, name: str) -> GuestChannel:
    """The guest agent of project ``name``'s VM, once it answers."""
    channel = GuestChannel(Path(ctx.projects.get(name).load().spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def read_shared_files(channel: GuestChannel) -> dict[str, str]:
    """The files the tests write under /data/shared in the guest, by name."""
    names = channel.check_output("mkdir -p /data/shared; ls /data/shared").split()
    return {n: channel.check_output(f"cat /data/shared/{n}").strip() for n in sorted(names)}


def system_layer(ctx: Workspace, project: str, state_id: str) -> Path:
    """The frozen system-disk layer of one state."""
    files = ctx.projects.get(project)
    return files.layers.path(files.states()[state_id].layers["system"])
