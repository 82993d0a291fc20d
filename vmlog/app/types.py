"""The value types that use cases hand to their callers, so the CLI and the GUI need import nothing below vmlog.app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypervisors.base import Capability, VMState
from vmlog.app.results import VMStatus
from vmlog.lazy_exports import lazy_exports
from vmlog.logbook.book import Entry, Note
from vmlog.projects.driver import Progress
from vmlog.projects.model import Project, State
from vmlog.workspace import Workspace

if TYPE_CHECKING:
    from vmlog.bundles import VerifiedBundle

__all__ = [
    "Capability", "Entry", "Note", "Progress", "Project", "State", "VerifiedBundle", "VMState", "VMStatus", "Workspace",
]


# the bundle reader is for the commands that read bundles, not for every command that names these types
__getattr__, __dir__ = lazy_exports(__name__, {"vmlog.bundles.reader": ("VerifiedBundle",)})
