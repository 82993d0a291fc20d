"""The logbook rows an imported state arrived with, kept beside the state as the sender wrote them."""

from __future__ import annotations

import json
from typing import Any

from vmlog import fsutil
from vmlog.projects.store import ProjectFiles

SENDER_LOGBOOK = "sender-logbook.json"


def write_sender_logbook(files: ProjectFiles, state_id: str, rows: list[dict[str, Any]]) -> None:
    fsutil.atomic_write_json(files.state_dir(state_id) / SENDER_LOGBOOK, rows)


def read_sender_logbook(files: ProjectFiles, state_id: str) -> list[dict[str, Any]]:
    """The logbook rows a state arrived with (empty for states saved here)."""
    path = files.state_dir(state_id) / SENDER_LOGBOOK
    try:
        rows = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
