"""One use case's unit of work: the projects' locks, its logbook row, and the undo steps run if it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from vmlog import locking
from vmlog.logbook import Operation
from vmlog.workspace import Workspace

log = logging.getLogger(__name__)


class Session:
    """Handle a use case fills in while it runs: what the logbook row says, and what to undo on failure."""

    def __init__(self, ws: Workspace, operation: Operation) -> None:
        self.ws = ws
        self.operation = operation
        self._undo: list[Callable[[], object]] = []

    @property
    def message(self) -> str | None:
        return self.operation.message

    @message.setter
    def message(self, text: str | None) -> None:
        self.operation.message = text

    @property
    def state_id(self) -> str | None:
        return self.operation.state_id

    @state_id.setter
    def state_id(self, value: str | None) -> None:
        self.operation.state_id = value

    @property
    def project(self) -> str | None:
        return self.operation.project

    @project.setter
    def project(self, name: str | None) -> None:
        self.operation.project = name

    def on_rollback(self, undo: Callable[[], object]) -> None:
        """Run ``undo`` if the use case fails after this point (last registered, first run)."""
        self._undo.append(undo)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception:  # an undo that fails must not hide the error that caused it
                log.exception("undo step %r failed", undo)
        self._undo.clear()


@contextmanager
def session(
    ws: Workspace, projects: str | list[str], action: str, state: str | None = None, **args: Any
) -> Iterator[Session]:
    """Lock ``projects`` (``Busy`` if another process holds one), open the logbook row, undo on failure.

    The row names the first project; its outcome is ``ok``, ``failed`` or ``cancelled`` as the block
    ends. Undo steps run before the lock is released, so no other process sees the half-done work.
    """
    names = [projects] if isinstance(projects, str) else list(projects)
    with locking.project_locks(ws.home.locks, names, action):
        with ws.logbook.operation(names[0], action, state, **args) as operation:
            current = Session(ws, operation)
            try:
                yield current
            except BaseException:
                current.rollback()
                raise
