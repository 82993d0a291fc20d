"""The logbook as a user reads and annotates it: history and notes."""

from __future__ import annotations

from typing import Any

from vmlog.app.projects import load
from vmlog.projects import refs
from vmlog.workspace import Workspace, workspace


def add_note(
    text: str, *, project_name: str | None = None, ref: str | None = None, ctx: Workspace | None = None
) -> dict[str, Any]:
    """Attach a note to a state (default: the current project's current state)."""
    ctx = workspace(ctx)
    files, project = load(project_name, ctx)
    state_id = project.current
    if ref is not None:
        state_id = refs.resolve(files.states(), project.current, ref).id
    return ctx.logbook.add_note(text, project.name, state_id).to_dict()


def history(
    project_name: str | None = None, *, since: float | None = None, ctx: Workspace | None = None
) -> list[dict[str, Any]]:
    ctx = workspace(ctx)
    return [item.to_dict() for item in ctx.logbook.history(project=project_name, since=since)]

