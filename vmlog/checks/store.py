"""A project's checks on disk: ``checks.json`` in the project directory, readable and written atomically.

The file is meant to be read (and reviewed) by people: indented JSON, one object a check, in the
order they were added. It also travels in bundles, so it is read with :mod:`vmlog.safejson`'s limits
and a malformed file is a clear error, not a crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmlog import fsutil, safejson
from vmlog.checks.model import Check
from vmlog.errors import InvalidInput

CHECKS_FILE = "checks.json"
FORMAT = 1
MAX_BYTES = 1 << 20


def checks_from_json(data: bytes | str, *, what: str) -> list[Check]:
    """The checks of a ``checks.json`` text (``what`` names it in errors), each validated."""
    try:
        document = safejson.loads(data, what=what, max_bytes=MAX_BYTES)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}", fix="correct or remove the file") from None
    if not isinstance(document, dict) or not isinstance(document.get("checks"), list):
        raise InvalidInput(f"{what} has no list of checks", fix="correct or remove the file")
    if document.get("format", FORMAT) != FORMAT:
        raise InvalidInput(f"{what} is in format {document.get('format')!r}; this vmlog reads format {FORMAT}")
    checks: list[Check] = []
    for item in document["checks"]:
        try:
            checks.append(Check.from_dict(item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"{what} holds a malformed check: {exc!r}", fix="correct or remove the file") from None
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise InvalidInput(f"{what} names a check twice", fix="correct the file")
    return checks


def checks_to_json(checks: list[Check]) -> dict[str, Any]:
    return {"format": FORMAT, "checks": [c.to_dict() for c in checks]}


class CheckFile:
    """The ``checks.json`` of one project directory (missing means no checks)."""

    def __init__(self, project_root: Path) -> None:
        self.path = Path(project_root) / CHECKS_FILE

    def load(self) -> list[Check]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return checks_from_json(data, what=str(self.path))

    def save(self, checks: list[Check]) -> None:
        if not checks:
            self.path.unlink(missing_ok=True)
            return
        fsutil.atomic_write_json(self.path, checks_to_json(checks))
