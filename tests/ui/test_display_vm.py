"""The real guest's screen through VNC: a picture of the framebuffer is not blank, and typed keys reach the guest.

One boot for the module: the test appliance on the real libvirt backend, read with the window's own RFB
client (:mod:`ui.rfb`) and then through the window's Screen action.
"""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ui.display_window import DisplayWindow
from ui.rfb import RfbClient
from vmlog.app import display, projects, running
from vmlog.testappliance.agent import GuestChannel

pytestmark = pytest.mark.vm
PROJECT = "screen"


@pytest.fixture(scope="module")
def booted(test_appliance_image: Path) -> Iterator[GuestChannel]:
    """The test appliance booted once for the module, its guest agent ready."""
    root = Path(tempfile.mkdtemp(prefix="vml-scr-", dir="/tmp"))
    patch = pytest.MonkeyPatch()
    patch.setenv("VMLOG_HOME", str(root))
    try:
        projects.new_project(PROJECT, str(test_appliance_image), memory_mib=256)
        running.up(PROJECT)
        _files, project = projects.load(PROJECT)
        channel = GuestChannel(Path(project.spec["channel_socket"]))
        channel.wait_ready(600)
        yield channel
        channel.close()
    finally:
        try:
            running.down(PROJECT, mode="poweroff")
            projects.remove_project(PROJECT)
        finally:
            patch.undo()
            shutil.rmtree(root, ignore_errors=True)


def lit_pixels(pixels: bytes) -> int:
    """How many pixels are not black (B, G, R, X bytes)."""
    view = memoryview(pixels)
    return sum(1 for i in range(0, len(view), 4) if view[i] or view[i + 1] or view[i + 2])


def test_the_screen_shows_the_guest_and_takes_typed_keys(booted: GuestChannel) -> None:
    shown = display.display(PROJECT)
    assert shown.endpoint.protocol == "vnc" and shown.endpoint.host == "127.0.0.1" and shown.endpoint.port >= 5900
    booted.check_output("echo VMLOG-SCREEN-TEST > /dev/tty1")
    client = RfbClient.connect(shown.endpoint.host, shown.endpoint.port)
    try:
        width, height, pixels = client.read_screen()
        assert width >= 640 and height >= 400
        assert lit_pixels(pixels) > 200, "the framebuffer is blank"
        # a reader on the guest's first virtual terminal; the keys typed through VNC end its line
        read: dict[str, tuple[int, str]] = {}
        reader = threading.Thread(target=lambda: read.setdefault("line", booted.run("head -n 1 /dev/tty1", 60)))
        reader.start()
        time.sleep(2)
        client.type_text("vmlog42\n")
        reader.join(90)
        assert read.get("line") == (0, "vmlog42\n")
        after = client.read_screen()[2]
        assert after != pixels  # the terminal echoed what was typed
    finally:
        client.close()


def test_the_screen_is_served_by_spice_too_where_qemu_has_it(booted: GuestChannel) -> None:
    """A SPICE server answers a client's link message (magic ``REDQ``, protocol 2) at the address the viewer gets."""
    shown = display.display(PROJECT)
    if "spice" not in shown.protocols:
        pytest.skip("this host's QEMU has no SPICE")
    spice = display.display(PROJECT, protocol="spice")
    assert spice.uri.startswith("spice://127.0.0.1:") and spice.endpoint.port != shown.endpoint_for("vnc").port
    # SpiceLinkMess: connection id, channel type (1: main), channel id, no capabilities, caps offset = its size
    message = struct.pack("<IBBIII", 0, 1, 0, 0, 0, 18)
    with socket.create_connection((spice.endpoint.host, spice.endpoint.port), timeout=30) as link:
        link.sendall(struct.pack("<4sIII", b"REDQ", 2, 2, len(message)) + message)
        reply = b""
        while len(reply) < 16:
            chunk = link.recv(16 - len(reply))
            assert chunk, "the SPICE server closed the link"
            reply += chunk
    magic, major, _minor, size = struct.unpack("<4sIII", reply)
    assert (magic, major) == (b"REDQ", 2) and size > 0


def test_the_window_shows_the_screen(qtbot, booted: GuestChannel) -> None:
    from ui.controllers import wire
    from ui.main_window import MainWindow

    window = MainWindow()
    wire(window, refresh_ms=0, events=False)
    qtbot.addWidget(window)
    window.show()
    controller = window.projects_controller
    qtbot.waitUntil(lambda: window.projects_page.buttons["display"].isEnabled(), timeout=60_000)
    job = controller.show_display()
    qtbot.waitUntil(lambda: job.returned.is_set(), timeout=60_000)
    assert job.failure is None, job.failure.details
    qtbot.waitUntil(lambda: bool(controller.display_windows), timeout=60_000)
    assert list(controller.display_windows) == [PROJECT]
    screen: DisplayWindow = controller.display_windows[PROJECT]
    qtbot.waitUntil(lambda: screen.view.frames > 0, timeout=60_000)
    image = screen.view.image()
    assert image is not None and not image.isNull()
    lit = sum(1 for x in range(0, image.width(), 8) for y in range(0, image.height(), 8)
              if image.pixelColor(x, y).value() > 0)
    assert lit > 10
    screen.close()
    assert screen.view.client is None
    window.runner.wait(60_000)
