"""The embedded screen: the RFB client reads the framebuffer, the view draws it, keys and clicks reach the server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_vnc import FakeVncServer
from PySide6.QtCore import QPoint, Qt

from ui.display_view import DisplayView
from ui.rfb import RfbClient


@pytest.fixture
def server() -> Iterator[FakeVncServer]:
    fake = FakeVncServer()
    yield fake
    fake.close()


def test_the_client_reads_the_screen(server: FakeVncServer) -> None:
    client = RfbClient.connect("127.0.0.1", server.port)
    try:
        width, height, pixels = client.read_screen()
        assert (width, height, client.name) == (64, 48, "fake guest")
        assert pixels[:4] == bytes([10, 30, 200, 0])  # B, G, R, X as QImage.Format_RGB32 reads it
        client.type_text("ls\n")
        assert server.got.wait(5)
    finally:
        client.close()


def test_the_view_draws_the_screen_and_forwards_keys_and_clicks(qtbot, server: FakeVncServer) -> None:
    view = DisplayView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    view.attach(RfbClient.connect("127.0.0.1", server.port))
    qtbot.waitUntil(lambda: view.frames > 0, timeout=5000)
    image = view.image()
    assert image is not None and image.pixelColor(5, 5).red() == 200
    assert view.grab().toImage().pixelColor(200, 150).red() == 200  # drawn, scaled to the widget
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_A)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    qtbot.keyClick(view, Qt.Key.Key_Tab)  # stays with the guest, does not move the focus
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(view.width() // 2, view.height() // 2))
    qtbot.waitUntil(lambda: len(server.keys) >= 6 and bool(server.pointer), timeout=5000)
    assert [k for k, down in server.keys if down] == [ord("a"), 0xFF0D, 0xFF09]
    assert view.hasFocus()
    assert any(mask == 1 and (x, y) == (32, 24) for x, y, mask in server.pointer)
    view.detach()
    assert view.client is None


def test_the_screen_action_opens_a_window_on_the_vms_display(qtbot, window, server: FakeVncServer,
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from hypervisors.base import DisplayEndpoint
    from ui.controllers import display as display_actions
    from vmlog.app import display, projects

    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 1024 * 1024)
    projects.new_project("lab", str(base))
    end = DisplayEndpoint("vnc", host="127.0.0.1", port=server.port)
    monkeypatch.setattr(display_actions.app_display, "display",
                        lambda name, ctx=None: display.Display(name, end, None))
    controller = window.projects_controller
    controller.refresh()
    qtbot.waitUntil(lambda: controller.project == "lab", timeout=20_000)
    controller.show_display()
    qtbot.waitUntil(lambda: "lab" in getattr(controller, "display_windows", {}), timeout=20_000)
    screen = controller.display_windows["lab"]
    qtbot.waitUntil(lambda: screen.view.frames > 0, timeout=5000)
    assert "64×48" in screen.status.text() and not screen.open_viewer.isEnabled()
    screen.close()
    assert screen.view.client is None
