"""The "current project" (the last one used), so commands can leave out the PROJECT argument."""

from __future__ import annotations

from pathlib import Path

from vmlog import fsutil

FILE_NAME = "current-project"


def get(data_dir: Path) -> str | None:
    try:
        value = (Path(data_dir) / FILE_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    return value or None


def set_(data_dir: Path, name: str | None) -> None:
    path = Path(data_dir) / FILE_NAME
    if name is None:
        path.unlink(missing_ok=True)
        return
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    fsutil.atomic_write_text(path, name + "\n")
