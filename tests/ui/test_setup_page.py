"""The Appliances page's "Set up" runs the whole setup service against a catalog on a real HTTP server."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ui.pages.appliances import SetupProgress
from vmlog.app import projects, running
from vmlog.appliances.catalog import Catalogs
from vmlog.testappliance.build import appliance_metadata
from vmlog.workspace import Workspace

APPLIANCE = "seeded-test"


@pytest.fixture
def vmlog_home(monkeypatch: pytest.MonkeyPatch):
    """A short home: the guest agent's Unix socket path must stay under 108 bytes."""
    root = Path(tempfile.mkdtemp(prefix="vml-ui-", dir="/tmp"))
    monkeypatch.setenv("VMLOG_HOME", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)



class Catalog:
    """The test appliance and a vmlog catalog offering it, on 127.0.0.1; ``slow`` dribbles the image."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self.meta = appliance_metadata(image)
        self.slow = threading.Event()
        catalog = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/catalog.json":
                    body = json.dumps(catalog.document()).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                size = catalog.meta["size"]
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                try:
                    with open(catalog.image, "rb") as image:
                        while chunk := image.read(256 * 1024):
                            self.wfile.write(chunk)
                            if catalog.slow.is_set():
                                time.sleep(0.2)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def document(self) -> dict:
        return {
            "vmlog_catalog": 1,
            "appliances": [
                {
                    "name": APPLIANCE,
                    "title": "Test appliance",
                    "description": "The vmlog test appliance, served for the setup test.",
                    "versions": [
                        {
                            "version": "1.0",
                            "min_memory_mib": 256,
                            "context": "nocloud",
                            "boot": {"agent": "vmlog", "ssh": False},
                            "images": {
                                "raw": {
                                    "urls": [f"{self.url}/appliance.raw"],
                                    "size": self.meta["size"],
                                    "digest": {"sha256": self.meta["sha256"]},
                                }
                            },
                        }
                    ],
                }
            ],
        }

    def stop(self) -> None:
        self.slow.clear()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def catalog(vmlog_home: Path, test_appliance_image: Path) -> Iterator[Catalog]:
    served = Catalog(test_appliance_image)
    Catalogs(Workspace.default().home.config).add(f"{served.url}/catalog.json", name="served")
    yield served
    served.stop()


def tile_button(qtbot, window):
    page = window.appliances_page
    window.appliances_controller.refresh()
    qtbot.waitUntil(lambda: APPLIANCE in page.tiles, timeout=30_000)
    return page.tiles[APPLIANCE].button


def set_up(qtbot, window) -> None:
    """Press the tile's Set up and accept the dialog's proposed name, CPUs and memory."""
    tile_button(qtbot, window).click()
    dialog = window.appliances_controller.active_dialog
    assert dialog.values()["name"] == APPLIANCE
    dialog.ok.click()


def test_cancel_during_the_download_leaves_no_project(qtbot, window, catalog: Catalog, kvm_available) -> None:
    catalog.slow.set()
    window.show_page("Appliances")
    set_up(qtbot, window)
    page = window.appliances_page
    view: SetupProgress = page.setups[APPLIANCE]
    job = window.appliances_controller.jobs[APPLIANCE]
    qtbot.waitUntil(lambda: view.current_step == "Download" and "/s" in view.progress.detail.text(), timeout=60_000)
    assert "left" in view.progress.detail.text()  # rate and time left while the image downloads
    with qtbot.waitSignal(job.signals.cancelled, timeout=60_000):
        view.progress.cancel_button.click()
    assert job.failure is None
    ctx = Workspace.default()
    assert ctx.projects.names() == [] and ctx.images.list() == []
    partial = list(ctx.home.downloads.glob("*.part"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < catalog.meta["size"]
    qtbot.waitUntil(lambda: APPLIANCE not in page.setups, timeout=10_000)
    assert page.tiles[APPLIANCE].button.isEnabled()
    assert window.projects_page.projects.count() == 0


@pytest.mark.vm
def test_set_up_boots_the_appliance_and_the_sidebar_shows_it_running(
    qtbot, window, catalog: Catalog, kvm_available
) -> None:
    window.show_page("Appliances")
    set_up(qtbot, window)
    view: SetupProgress = window.appliances_page.setups[APPLIANCE]
    job = window.appliances_controller.jobs[APPLIANCE]
    steps: list[str] = []
    job.signals.progress.connect(lambda _event: steps.append(view.current_step or ""))
    try:
        with qtbot.waitSignal(window.appliances_controller.setup_finished, timeout=900_000) as blocker:
            pass
        assert blocker.args == [APPLIANCE]
        assert job.result.ready_by == "agent" and job.result.created
        # the step view went through every step in order
        assert [s for s in dict.fromkeys(steps) if s] == ["Download", "Verify", "Contextualise", "Boot", "Ready"]
        sidebar = window.projects_page.projects
        qtbot.waitUntil(lambda: sidebar.summary(APPLIANCE) is not None, timeout=60_000)
        assert window.stack.currentWidget() is window.projects_page  # the window shows the new project
        assert sidebar.selected_project() == APPLIANCE
        assert sidebar.summary(APPLIANCE).vm_state == "running"
    finally:
        window.runner.cancel_all()
        window.runner.wait(120_000)
        if APPLIANCE in Workspace.default().projects.names():
            running.down(APPLIANCE, mode="poweroff")
            projects.remove_project(APPLIANCE)
