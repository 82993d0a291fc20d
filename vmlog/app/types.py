"""The value types that use cases hand to their callers, so the CLI and the GUI need import nothing below vmlog.app."""

from __future__ import annotations

from hypervisors.base import Capability, VMState
from vmlog.app.results import VMStatus
from vmlog.bundles import VerifiedBundle
from vmlog.logbook.book import Entry, Note
from vmlog.projects.driver import Progress
from vmlog.projects.model import Project, State
from vmlog.workspace import Workspace

__all__ = [
    "Capability", "Entry", "Note", "Progress", "Project", "State", "VerifiedBundle", "VMState", "VMStatus", "Workspace",
]
