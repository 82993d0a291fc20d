"""Where the window finds its icon: next to the package when installed, in packaging/ in a checkout."""

from __future__ import annotations

from pathlib import Path

ICON_NAME = "io.github.vmlog.Vmlog.svg"


def icon_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "data" / ICON_NAME, here.parent / "packaging" / "icons" / ICON_NAME):
        if candidate.exists():
            return candidate
    return here / "data" / ICON_NAME
