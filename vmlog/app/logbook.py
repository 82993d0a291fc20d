"""The logbook as a user reads and annotates it: history, notes, and the sender's rows imported states arrived with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmlog.app.projects import load
from vmlog.app.results import MappingResult
from vmlog.logbook.book import Entry, Note
from vmlog.projects import refs
from vmlog.projects.sender_log import read_sender_logbook
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace, workspace


def _timestamp(iso: Any) -> float:
    """A sender row's ``started``/``created`` (``2026-11-21T23:30:50+0000``) as a timestamp; 0 if unreadable."""
    try:
        return datetime.strptime(str(iso), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return 0.0


@dataclass
class LoggedOperation(Entry, MappingResult):
    """An operation row of this home's logbook."""


@dataclass
class LoggedNote(Note, MappingResult):
    """A note in this home's logbook."""

    @property
    def kind(self) -> str:
        return "note"  # as an operation's ``kind`` says "operation", so a history reads as one list


def _typed(item: Entry | Note) -> LoggedOperation | LoggedNote:
    return LoggedOperation(**vars(item)) if isinstance(item, Entry) else LoggedNote(**vars(item))


@dataclass(frozen=True)
class SenderRecord(MappingResult):
    """One row of the logbook excerpt an imported state arrived with: what the sender did or noted, who and when.

    ``row`` is the row as the sender's logbook wrote it (an operation's or a note's ``to_dict()``);
    ``project`` and ``state_id`` say where it is kept here (the sender's project name is in ``row``).
    """

    project: str
    state_id: str
    row: dict[str, Any]

    @property
    def kind(self) -> str:
        return "note" if self.row.get("kind") == "note" else "operation"

    @property
    def who(self) -> str:
        return str(self.row.get("who") or "")

    @property
    def when(self) -> float:
        return _timestamp(self.row.get("created") if self.kind == "note" else self.row.get("started"))

    @property
    def what(self) -> str:
        """The note's text or the action, as the sender's logbook named it."""
        return str(self.row.get("text") if self.kind == "note" else self.row.get("action") or "")

    def to_dict(self) -> dict[str, Any]:
        """The sender's row, kept under this project and state, marked ``from_sender``."""
        return {
            **self.row,
            "project": self.project,
            "state": self.state_id,
            "sender_project": self.row.get("project"),
            "from_sender": True,
        }


HistoryItem = LoggedOperation | LoggedNote | SenderRecord


def sender_records(files: ProjectFiles, project: str, state_id: str) -> list[SenderRecord]:
    return [SenderRecord(project, state_id, row) for row in read_sender_logbook(files, state_id)]


def _when(item: HistoryItem) -> float:
    if isinstance(item, Entry):
        return item.started
    return item.created if isinstance(item, Note) else item.when


def add_note(
    text: str, *, project_name: str | None = None, ref: str | None = None, ctx: Workspace | None = None
) -> LoggedNote:
    """Attach a note to a state (default: the current project's current state)."""
    ctx = workspace(ctx)
    files, project = load(project_name, ctx)
    state_id = project.current
    if ref is not None:
        state_id = refs.resolve(files.states(), project.current, ref).id
    note = ctx.logbook.add_note(text, project.name, state_id)
    return LoggedNote(**vars(note))


def history(
    project_name: str | None = None, *, since: float | None = None, ctx: Workspace | None = None
) -> list[HistoryItem]:
    """Operations and notes, oldest first, with the rows imported states arrived with from their sender."""
    ctx = workspace(ctx)
    items: list[HistoryItem] = [_typed(item) for item in ctx.logbook.history(project=project_name, since=since)]
    names = [project_name] if project_name else ctx.projects.names()
    existing = set(ctx.projects.names())
    # Only imports bring a sender's logbook, so only the states they brought are looked at (not one file a
    # state); an import before ``since`` brought rows older still, which ``since`` leaves out anyway.
    imported: dict[str, set[str]] = {}
    for item in items:
        if isinstance(item, Entry) and item.action == "state import" and item.state_id and item.project:
            imported.setdefault(item.project, set()).add(item.state_id)
    for name in names:
        if name not in existing or name not in imported:
            continue
        files = ctx.projects.files(name)
        for state_id in sorted(imported[name] & set(files.states())):
            records = sender_records(files, name, state_id)
            items.extend(r for r in records if since is None or r.when >= since)
    return sorted(items, key=_when)
