"""``vml-gui`` started as its desktop file starts it, under a real X server (Xvfb) and a window manager, shows up.

The offscreen tests cannot see a missing X library (Qt's xcb plugin fails only under X), so this one runs
the real thing: Xvfb, openbox if installed, then the desktop file's ``Exec`` line; xdotool finds the window
and xwininfo says it is mapped. Skipped where Xvfb or xdotool is not installed (``.ci/setup-host`` installs them).
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DESKTOP_FILE = ROOT / "packaging" / "io.github.vmlog.Vmlog.desktop"


@pytest.fixture
def x_display(tmp_path: Path) -> Iterator[str]:
    """A fresh Xvfb server (and openbox on it when installed); yields its DISPLAY."""
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None or shutil.which("xwininfo") is None:
        pytest.skip("needs Xvfb, xdotool and xwininfo (apt-get install xvfb xdotool x11-utils)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            break
        number += chunk
    os.close(read)
    display = f":{number.decode().strip()}"
    manager = None
    if shutil.which("openbox"):
        manager = subprocess.Popen(["openbox"], env={**os.environ, "DISPLAY": display},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield display
    finally:
        for process in (manager, server):
            if process is not None:
                process.terminate()
                process.wait(10)


def desktop_command() -> list[str]:
    """The desktop file's Exec line with its field codes dropped and vml-gui taken from beside this interpreter."""
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(DESKTOP_FILE)
    words = [w for w in shlex.split(entry["Desktop Entry"]["Exec"]) if not w.startswith("%")]
    beside = Path(sys.executable).parent / words[0]
    return [str(beside) if beside.exists() else words[0], *words[1:]]


def test_vml_gui_shows_its_window_under_x(x_display: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=x_display, VMLOG_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT),
               VMLOG_LIBVIRT_URI="test:///default")
    log = tmp_path / "gui.log"
    with log.open("wb") as out:
        gui = subprocess.Popen(desktop_command(), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        window_id = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not window_id:
            assert gui.poll() is None, f"vml-gui exited with {gui.returncode}: {log.read_text()}"
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "vmlog"], env=env,
                                   capture_output=True, text=True)
            window_id = found.stdout.split()[0] if found.stdout.split() else ""
            time.sleep(0.3)
        assert window_id, f"no vmlog window appeared: {log.read_text()}"
        info = subprocess.run(["xwininfo", "-id", window_id], env=env, capture_output=True, text=True).stdout
        assert "Map State: IsViewable" in info
        width = int(next(line.split()[-1] for line in info.splitlines() if "Width:" in line))
        assert width >= 600
        assert "Could not load the Qt platform plugin" not in log.read_text()
    finally:
        gui.terminate()
        gui.wait(20)
