"""The screen window's way out: the standard viewer, by VNC or, where the VM serves it, SPICE (kept as a choice)."""

from __future__ import annotations

from ui.display_window import DisplayWindow

VNC = ["/usr/bin/remote-viewer", "--title=alpha (vmlog)", "vnc://127.0.0.1:5901"]
SPICE = ["/usr/bin/remote-viewer", "--title=alpha (vmlog)", "spice://127.0.0.1:5902"]


def test_a_vm_with_spice_offers_it_for_the_viewer_and_keeps_the_choice(qtbot) -> None:
    kept: list[str] = []
    window = DisplayWindow(None, "alpha", "vnc://127.0.0.1:5901", VNC, {"vnc": VNC, "spice": SPICE},
                           preferred="vnc", on_choice=kept.append)
    qtbot.addWidget(window)
    assert not window.protocol.isHidden() and window.open_viewer.isEnabled()
    assert [window.protocol.itemText(i) for i in range(window.protocol.count())] == ["VNC viewer", "SPICE viewer"]
    assert "this window is VNC" in window.protocol.toolTip()
    assert window.viewer == VNC
    window.protocol.setCurrentIndex(1)
    window.protocol.activated.emit(1)
    assert window.viewer == SPICE and kept == ["spice"]


def test_a_vnc_only_vm_shows_no_choice(qtbot) -> None:
    window = DisplayWindow(None, "alpha", "vnc://127.0.0.1:5901", VNC, {"vnc": VNC}, preferred="spice")
    qtbot.addWidget(window)
    assert window.protocol.isHidden() and window.viewer == VNC
    bare = DisplayWindow(None, "alpha", "vnc://127.0.0.1:5901", None)
    qtbot.addWidget(bare)
    assert bare.viewer is None and not bare.open_viewer.isEnabled()
