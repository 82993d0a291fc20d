"""The Releases page against a real CernVM-FS-format repository on a local HTTP server and a real FUSE mount."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "vmlog" / "releases"))
from release_repos import CvmfsRepoBuilder, ServedDirectory  # noqa: E402

from ui.pages.releases import CustomizeMountDialog  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fuse3")

FILES = {
    "24.0/24.0.1/bin/setup.sh": b"#!/bin/sh\necho release 24.0.1\n",
    "24.0/24.0.3/share/README": b"Physics release 24.0.3\n",
    "25.1/25.1.0/share/README": b"Physics release 25.1.0\n",
}


@pytest.fixture
def repository(tmp_path: Path):
    builder = CvmfsRepoBuilder(tmp_path / "www")
    for series in ("24.0", "25.1"):
        builder.add_dir(f"sw/software/{series}", nested=True)
    for path, data in FILES.items():
        builder.add_file(f"sw/software/{path}", data)
    builder.publish(7, "prod-2024")
    served = ServedDirectory(tmp_path / "www")
    key = tmp_path / "sw.example.org.pub"
    key.write_text(builder.master_public_pem())
    yield f"{served.url}/cvmfs/{builder.name}", key
    served.stop()


def wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.runner.active, timeout=120_000)
    controller = window.releases_controller
    with qtbot.waitSignal(controller.refreshed, timeout=60_000):
        controller.refresh()
    box = window.jobs.last_failure_box
    assert box is None, f"a job failed: {box.text()} {box.informativeText()}"


def select(view, column0: str) -> None:
    model = view.model()
    row = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == column0)
    view.setCurrentIndex(model.index(row, 0))


def test_add_a_source_start_a_release_read_its_log_and_unmount(qtbot, window, repository, tmp_path) -> None:
    url, key = repository
    page = window.releases_page
    window.show_page("Releases")
    wait_idle(qtbot, window)
    assert page.available_rows() == [] and "No release source" in page.available_note.text()

    # Configure: add the source (the page verifies its signatures by listing it)
    page.tabs.setCurrentIndex(2)
    page.url.setText(url)
    page.key_file.setText(str(key))
    page.pattern.setText("sw/software/{series}/{release}")
    page.proxy.setText("")
    page.add_source.click()
    wait_idle(qtbot, window)
    sources = page.sources_model
    assert [sources.index(r, 0).data() for r in range(sources.rowCount())] == ["sw.example.org"]
    assert [(r[0], r[1], r[2], r[3]) for r in page.available_rows()] == [
        ("24.0.1", "24.0", "7", "prod-2024"),
        ("24.0.3", "24.0", "7", "prod-2024"),
        ("25.1.0", "25.1", "7", "prod-2024"),
    ]

    # Mount with the defaults
    page.tabs.setCurrentIndex(1)
    select(page.available, "24.0.3")
    page.start.click()
    wait_idle(qtbot, window)
    assert page.tabs.currentIndex() == 0
    running = page.running_rows()
    assert [(r[0], r[1], r[2]) for r in running] == [("24.0.3", "7", "prod-2024")]
    mountpoint = Path(running[0][3])
    assert (mountpoint / "share/README").read_text() == "Physics release 24.0.3\n"

    # Customize & Mount: own mount path, cache size and log file
    select(page.available, "25.1.0")
    page.customize.click()
    dialog = window.releases_controller.active_dialog
    assert isinstance(dialog, CustomizeMountDialog)
    own_mount, own_log = tmp_path / "mnt-25", tmp_path / "logs" / "25.log"
    dialog.at.setText(str(own_mount))
    dialog.cache_size.setValue(64)
    dialog.log_file.setText(str(own_log))
    dialog.accept()
    wait_idle(qtbot, window)
    assert sorted(r[0] for r in page.running_rows()) == ["24.0.3", "25.1.0"]
    assert (own_mount / "share/README").read_text() == "Physics release 25.1.0\n"
    assert os.path.ismount(own_mount)

    # the log of the selected mount, from its own log file
    select(page.running, "25.1.0")
    qtbot.waitUntil(lambda: "mounting 25.1.0 revision 7" in page.log.toPlainText(), timeout=30_000)
    assert page.log_title.text() == "Log of 25.1.0"
    assert "mounting 25.1.0 revision 7" in own_log.read_text()

    # Unmount both
    for name in ("25.1.0", "24.0.3"):
        select(page.running, name)
        page.unmount.click()
        wait_idle(qtbot, window)
    assert page.running_rows() == []
    assert not os.path.ismount(own_mount) and not os.path.ismount(mountpoint)
