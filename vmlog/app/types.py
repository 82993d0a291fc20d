"""The value types that use cases hand to their callers, so the CLI and the GUI need import nothing below vmlog.app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypervisors.base import Capability, VMState
from vmlog.app.results import VMStatus
from vmlog.logbook.book import Entry, Note
from vmlog.projects.driver import Progress
from vmlog.projects.model import Project, State
from vmlog.workspace import Workspace

if TYPE_CHECKING:
    from vmlog.bundles import VerifiedBundle

__all__ = [
    "Capability", "Entry", "Note", "Progress", "Project", "State", "VerifiedBundle", "VMState", "VMStatus", "Workspace",
]


def __getattr__(name: str) -> Any:
    """``VerifiedBundle`` on first use: the bundle reader is for the commands that read bundles, not every command."""
    if name == "VerifiedBundle":
        from vmlog.bundles.reader import VerifiedBundle

        return VerifiedBundle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
