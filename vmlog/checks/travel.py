"""Checks travelling with a state: the ``checks.json`` member a bundle or archive carries, and merging it on import.

A colleague or a future reader who receives a state should be able to rerun what it must produce.
The member is the project's ``checks.json`` as written; on import it is read as hostile input (size
and nesting limits, every check validated) and merged into the receiving project's checks: a check
of a new name is added, one that exists with the same definition is kept, and one that exists with
another definition is kept as it is here and reported, never silently replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from vmlog.checks.model import Check
from vmlog.checks.store import CheckFile, checks_from_json, checks_to_json

MEMBER_NAME = "checks.json"


def member_bytes(project_root: Path) -> bytes | None:
    """The bytes of the ``checks.json`` member for a bundle of this project, or None if it has no checks."""
    checks = CheckFile(project_root).load()
    if not checks:
        return None
    return (json.dumps(checks_to_json(checks), indent=2, sort_keys=True) + "\n").encode()


def parse_member(data: bytes, *, what: str = "the bundle's checks.json") -> list[Check]:
    """The checks of a received member, each validated; ``InvalidInput`` if malformed (call before writing)."""
    return checks_from_json(data, what=what)


@dataclass
class MergedChecks:
    """What an imported ``checks.json`` did to the receiving project's checks."""

    added: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)  # kept as they were here

    def describe(self) -> str:
        parts = [f"{len(self.added)} check(s) added"]
        if self.conflicting:
            parts.append(f"kept this project's own {', '.join(self.conflicting)}")
        return "; ".join(parts)


def merge_member(project_root: Path, data: bytes, *, what: str = "the bundle's checks.json") -> MergedChecks:
    """Merge a received ``checks.json`` into the project's; ``InvalidInput`` (nothing written) if it is malformed."""
    incoming = parse_member(data, what=what)
    book = CheckFile(project_root)
    mine = book.load()
    by_name = {c.name: c for c in mine}
    merged = MergedChecks()
    for check in incoming:
        if check.name not in by_name:
            mine.append(check)
            merged.added.append(check.name)
        elif by_name[check.name] == check:
            merged.same.append(check.name)
        else:
            merged.conflicting.append(check.name)
    if merged.added:
        book.save(mine)
    return merged
