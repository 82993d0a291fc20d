"""The native-tree journal: ``native-pending.json`` names the operation in flight, so repair can finish or forget it.

The hypervisor's snapshot and vmlog's records cannot change in one step; the journal is written
before the hypervisor is asked and removed once ``project.json`` names the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmlog import fsutil
from vmlog.projects.store import ProjectFiles

JOURNAL_FILE = "native-pending.json"


def journal_path(files: ProjectFiles) -> Path:
    return files.root / JOURNAL_FILE


def read_journal(files: ProjectFiles) -> dict[str, Any] | None:
    try:
        data = fsutil.read_json(journal_path(files))
    except FileNotFoundError:
        return None
    except ValueError:  # a torn write cannot happen (atomic), but a hand-edited file can
        return {"op": "unknown"}
    return data if isinstance(data, dict) else {"op": "unknown"}


def begin(files: ProjectFiles, **entry: Any) -> None:
    """Name the operation about to start (``op`` and its arguments), durably."""
    fsutil.atomic_write_json(journal_path(files), entry)


def end(files: ProjectFiles) -> None:
    """The operation is recorded (or undone): forget it, durably."""
    journal_path(files).unlink(missing_ok=True)
    fsutil.fsync_dir(files.root)
