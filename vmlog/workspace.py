"""Where vmlog works: one home with its image store, project store and logbook, opened once per use case."""

from __future__ import annotations

from dataclasses import dataclass

from vmlog.logbook import Logbook
from vmlog.paths import VmlogHome, home
from vmlog.projects.store import ProjectStore
from vmlog.store.images import ImageStore


@dataclass
class Workspace:
    """The stores of one vmlog home; every use case and the domain code below it work on one of these."""

    home: VmlogHome
    images: ImageStore
    projects: ProjectStore
    logbook: Logbook

    @classmethod
    def default(cls) -> Workspace:
        """The workspace of ``$VMLOG_HOME`` (or the platform's user directories), created if missing."""
        return cls.of(home())

    @classmethod
    def of(cls, h: VmlogHome) -> Workspace:
        """The workspace of the home ``h``, created if missing; a second home in one process needs no variable."""
        h.ensure()
        images = ImageStore(h.images)
        return cls(h, images, ProjectStore(h.projects, lambda sha: images.get(sha).path), Logbook(h.logbook))


def workspace(ws: Workspace | None) -> Workspace:
    """``ws``, or the default workspace when the caller passed none."""
    return ws or Workspace.default()
