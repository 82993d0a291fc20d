"""Screenshots of every page from real data: ``python -m ui.screenshots OUTDIR``.

Makes a throw-away vmlog home, creates a project on the vmlog test appliance through the project
service, saves, restores and branches states and writes notes the way a user would. It serves the
test appliance from a catalog on 127.0.0.1 (slowly, so the Appliances page is caught mid-download by
a real "Set up", cancelled afterwards) and a small HTTP release tree it mounts for real (FUSE), then
shows the real window on each page and saves ``projects.png``, ``appliances.png`` and ``releases.png``; then it
boots a project's VM and saves its screen, shown in the window's own viewer, as ``screen.png``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt is imported only once QT_QPA_PLATFORM and VMLOG_HOME are set
    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow
    from ui.workers import Job

WINDOW_SIZE = (1280, 800)
RELEASE_FILES = {
    "24.0/24.0.1/setup.sh": b"#!/bin/sh\necho release 24.0.1\n",
    "24.0/24.0.3/setup.sh": b"#!/bin/sh\necho release 24.0.3\n",
    "24.0/24.0.3/share/README": b"Physics release 24.0.3\n",
    "25.1/25.1.0/share/README": b"Physics release 25.1.0\n",
}


class _SlowFiles(SimpleHTTPRequestHandler):
    """Serves a directory; images trickle out so a setup can be seen while it downloads."""

    def log_message(self, *args: object) -> None:
        pass

    def copyfile(self, source, outputfile) -> None:  # type: ignore[override]
        slow = self.path.endswith(".raw")
        try:
            while chunk := source.read(64 * 1024):
                outputfile.write(chunk)
                if slow:
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_SlowFiles, directory=str(root)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _publish_release_tree(root: Path) -> None:
    """A plain HTTP release tree (``.vmlcatalog`` format, see ``vmlog.releases.tree_source``)."""
    lines = ["# vmlog release tree 1", "# revision: 12", "# tag: prod-2026-11"]
    dirs: set[str] = set()
    for path in RELEASE_FILES:
        parts = path.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    entries = [(d, None) for d in dirs] + list(RELEASE_FILES.items())
    for path, data in sorted(entries):
        if data is None:
            lines.append(f"D\t755\t0\t-\t1790000000\t{path}")
            continue
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        mode = "755" if path.endswith(".sh") else "644"
        lines.append(f"F\t{mode}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\t1790000000\t{path}")
    text = ("\n".join(lines) + "\n").encode()
    (root / ".vmlcatalog").write_bytes(text)
    (root / ".vmlcatalog.sha256").write_text(hashlib.sha256(text).hexdigest() + "\n")


def _offer_appliance(root: Path, url: str, image: Path) -> str:
    """Serve the test appliance and a catalog offering it; return the catalog's URL."""
    from vmlog.app.appliances import appliance_image_facts

    # its own image (the test appliance with a zeroed tail): the store must not have it yet
    served = root / "analysis-base.raw"
    with open(image, "rb") as source, open(served, "wb") as copy:
        while chunk := source.read(1 << 20):
            copy.write(chunk)
        copy.write(bytes(1 << 20))
    meta = appliance_image_facts(served)
    doc = {
        "vmlog_catalog": 1,
        "appliances": [{
            "name": "analysis-base",
            "title": "Analysis base",
            "description": "A small Linux guest with the group's analysis tools, contextualised on first boot.",
            "versions": [{
                "version": "2026.11",
                "min_memory_mib": 256,
                "context": "nocloud",
                "boot": {"agent": "vmlog", "ssh": False},
                "images": {"raw": {"urls": [f"{url}/analysis-base.raw"], "size": meta["size"],
                                   "digest": {"sha256": meta["sha256"]}}},
            }],
        }],
    }
    (root / "catalog.json").write_text(json.dumps(doc))
    return f"{url}/catalog.json"


def _make_history(image: Path) -> None:
    from vmlog.app import logbook, projects
    from vmlog.app import states as app_states

    projects.new_project("calibration", str(image), memory_mib=256)
    projects.new_project("higgs-mass", str(image), memory_mib=256)
    save = app_states.save_state
    fresh = save("higgs-mass", "fresh-install", message="vmlog test appliance as set up")
    save("higgs-mass", "calibrated", message="ran calibration v3 on run 2024B")
    before = save("higgs-mass", "before-rebase", message="tagging before rebasing on release 24.0.3")
    save("higgs-mass", "rebased-24.0.3", message="rebased on 24.0.3; all unit tests pass")
    app_states.restore_state("higgs-mass", before.id)
    save("higgs-mass", "try-gcc13", message="experiment: build with gcc 13")
    app_states.restore_state("higgs-mass", fresh.id)
    save("higgs-mass", "clean-rerun", message="rerun from scratch for the cross-check")
    logbook.add_note("cross-check agrees with the main analysis within 0.3%", project_name="higgs-mass")
    logbook.add_note("calibration constants copied to the group area", project_name="higgs-mass", ref="calibrated")
    save("calibration", "baseline", message="first pass")


def take(outdir: Path) -> list[Path]:
    from ui.app import build_window, make_application

    server, mounted = _prepare_home()
    app = make_application([])
    window = build_window()
    window.resize(*WINDOW_SIZE)
    window.show()
    _settle()
    _select_calibrated_state(window)
    outdir.mkdir(parents=True, exist_ok=True)
    shots = []
    try:
        for name in ("Projects", "Appliances", "Releases"):
            shots.append(_shoot(window, name, outdir))
        shots.append(_shoot_screen(window, "calibration", outdir))
    finally:
        _tear_down(window, app, server, mounted)
    return shots


def _prepare_home() -> tuple[ThreadingHTTPServer, list[str]]:
    """The test appliance's projects and history, a catalog served on 127.0.0.1, two mounted releases."""
    from vmlog.app import appliances, releases

    cache = Path(os.environ.get("VMLOG_TEST_CACHE", "~/.cache/vmlog-tests")).expanduser()
    image = appliances.build_local_test_appliance(cache)
    _make_history(image)
    www = Path(os.environ["VMLOG_HOME"]) / "www"
    www.mkdir()
    server, url = _serve(www)
    appliances.add_catalog(_offer_appliance(www, url, image), name="group")
    _publish_release_tree(www / "releases")
    releases.add_release_source(f"{url}/releases", kind="http-tree", name="physics", pattern="{series}/{release}",
                                proxy="", check=False)
    mounted = []
    for release in ("24.0/24.0.3", "25.1/25.1.0"):
        handle = releases.mount_on_host(release, source="physics")
        (handle.mountpoint / "share" / "README").read_bytes()  # a fetch, so the log shows one
        mounted.append(handle.name)
    return server, mounted


def _settle() -> None:
    """Let the window's background jobs finish and their results reach the widgets."""
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QApplication

    for _ in range(5):
        QThreadPool.globalInstance().waitForDone(30_000)
        QApplication.processEvents()


def _select_calibrated_state(window: MainWindow) -> None:
    page = window.projects_page
    names = [page.projects.item(i).text() for i in range(page.projects.count())]
    page.projects.setCurrentRow(names.index("higgs-mass"))
    _settle()
    page.tree.select_state(next(n.id for n in window.projects_controller.view.nodes if n.name == "calibrated"))


def _shoot(window: MainWindow, name: str, outdir: Path) -> Path:
    """Show page ``name`` in the state it is shown in, and save ``<name>.png``."""
    from PySide6.QtWidgets import QApplication

    window.show_page(name)
    job = None
    if name == "Appliances":
        job = _set_up_until_downloading(window, "analysis-base")
    elif name == "Releases":
        releases = window.releases_page
        releases.running.setCurrentIndex(releases.running_model.index(0, 0))
        _settle()
        window.releases_controller.refresh_running()
        _settle()
    if job is None:
        _settle()
    else:
        QApplication.processEvents()
    path = outdir / f"{name.lower()}.png"
    window.grab().save(str(path))
    if job is not None:
        job.cancel()
        _settle()
    return path


def _shoot_screen(window: MainWindow, project: str, outdir: Path) -> Path:
    """Boot ``project``'s VM, open its screen from the Projects page and save ``screen.png``."""
    from PySide6.QtWidgets import QApplication

    from vmlog.app import running

    running.up(project)
    window.show_page("Projects")
    page = window.projects_page
    page.projects.setCurrentRow(page.projects.names().index(project))
    _settle()
    controller = window.projects_controller
    controller.show_display()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and project not in controller.display_windows:
        QApplication.processEvents()
        time.sleep(0.05)
    screen = controller.display_windows[project]
    time.sleep(30)  # the guest boots on: its console shows more than the firmware
    while time.monotonic() < deadline and screen.view.frames < 3:
        QApplication.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    path = outdir / "screen.png"
    screen.grab().save(str(path))
    screen.close()
    return path


def _set_up_until_downloading(window: MainWindow, appliance: str) -> Job:
    """A real "Set up" of ``appliance``, returned while it downloads (its progress shows the time left)."""
    from PySide6.QtWidgets import QApplication

    job = window.appliances_controller.set_up(appliance)
    view = window.appliances_page.setups[appliance]
    deadline = time.monotonic() + 60
    while not job.finished_event.is_set() and time.monotonic() < deadline:
        QApplication.processEvents()
        if "left" in view.progress.detail.text():
            break
        time.sleep(0.05)
    if job.failure is not None:
        raise RuntimeError(f"the setup failed: {job.failure.message}")
    return job


def _tear_down(window: MainWindow, app: QApplication, server: ThreadingHTTPServer, mounted: list[str]) -> None:
    from vmlog.app import projects, releases, running
    from vmlog.app.types import VMState

    for mount in mounted:
        releases.umount_on_host(mount)
    for row in projects.list_projects():  # nothing may keep running once the home is gone
        if row.vm is not None and row.vm.state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            running.down(row.name, mode="poweroff")
    server.shutdown()
    window.close()
    app.processEvents()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0] if args else "docs/screenshots").resolve()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="vmlog-screens-", ignore_cleanup_errors=True) as home:
        os.environ["VMLOG_HOME"] = home
        for path in take(outdir):
            print(path)


if __name__ == "__main__":
    main()
