"""``vml doctor`` names the library Qt's X11 plugin misses, with the Debian package that has it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmlog.app import doctor


def fake_ldd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listing: str) -> None:
    """An ``ldd`` on PATH that prints ``listing`` (what the real one prints for a plugin with missing libraries)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ldd"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{listing}\nEOF\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


MISSING = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)"""


def test_a_missing_xcb_library_is_named_with_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ldd(tmp_path, monkeypatch, MISSING)
    monkeypatch.setenv("DISPLAY", ":0")
    check = doctor.check_gui_libraries()
    assert not check.ok and "libxcb-cursor.so.0, libxcb-icccm.so.4" in check.summary
    assert check.fix == "apt-get install -y libxcb-cursor0 libxcb-icccm4"


def test_without_a_desktop_it_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ldd(tmp_path, monkeypatch, MISSING)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    check = doctor.check_gui_libraries()
    assert check.ok and check.warnings == ["for the desktop window: apt-get install -y libxcb-cursor0 libxcb-icccm4"]


def test_all_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ldd(tmp_path, monkeypatch, "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)")
    monkeypatch.setenv("DISPLAY", ":0")
    assert doctor.check_gui_libraries().ok
