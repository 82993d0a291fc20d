"""Reproduction checks of a project: add, list, remove, and run them on states booted in throw-away clones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmlog.app.check_run import EXIT_DIVERGED, EXIT_NOT_EVALUATED, CheckRun, run_checks
from vmlog.app.projects import resolve_project
from vmlog.app.session import session
from vmlog.checks import record
from vmlog.checks.model import NUMBER, REGEX, TEXT, Check, Expectation, parse_tolerance
from vmlog.checks.runner import CheckResult
from vmlog.checks.store import CheckFile
from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.workspace import Workspace, workspace

__all__ = [
    "CheckInfo", "CheckList", "CheckRun", "CheckResult", "EXIT_DIVERGED", "EXIT_NOT_EVALUATED", "StateChecks",
    "Expectation", "add_check", "expectation", "last_check_results", "list_checks", "remove_check", "run_checks",
]



@dataclass(frozen=True)
class CheckInfo:
    """One check as the user defined it."""

    name: str
    command: str
    expected: str  # in words: ``172.4 ± 0.5``, ``matches /.../``
    expect: dict[str, Any]
    timeout: float

    @classmethod
    def of(cls, check: Check) -> CheckInfo:
        return cls(check.name, check.command, check.expect.describe(), check.expect.to_dict(), check.timeout)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "command": self.command, "expected": self.expected, "expect": dict(self.expect),
                "timeout": self.timeout}


@dataclass(frozen=True)
class CheckList:
    project: str
    checks: list[CheckInfo]

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class StateChecks:
    """A state's last check results (what the GUI shows): one word, and each check's newest result."""

    status: str  # passed, diverged, error, never run
    results: dict[str, record.LastResult]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "results": {k: v.to_dict() for k, v in self.results.items()}}


def _checks_of(ctx: Workspace, project: str | None) -> tuple[str, CheckFile]:
    name = resolve_project(project, ctx)
    return name, CheckFile(ctx.projects.get(name).root)


def expectation(
    *, expect: str | None = None, match: str | None = None, number: float | None = None,
    tolerance: str | None = None, number_pattern: str | None = None,
) -> Expectation:
    """The one expectation the options give: exact text, a regular expression, or a number and its tolerance."""
    given = [kind for kind, value in ((TEXT, expect), (REGEX, match), (NUMBER, number)) if value is not None]
    if len(given) != 1:
        raise InvalidInput(
            "a check needs exactly one expectation", fix="give one of --expect TEXT, --match REGEX, --number X"
        )
    if given[0] != NUMBER and (tolerance is not None or number_pattern is not None):
        raise InvalidInput("--tolerance and --number-pattern go with --number", fix="add --number X or drop them")
    if given[0] == TEXT:
        return Expectation(TEXT, str(expect))
    if given[0] == REGEX:
        return Expectation(REGEX, str(match))
    spread, relative = parse_tolerance(tolerance or "0")
    return Expectation(NUMBER, float(number or 0.0), tolerance=spread, relative=relative, pattern=number_pattern)


def add_check(
    name: str, command: str, expect: Expectation, *, timeout: float | None = None, replace: bool = False,
    project: str | None = None, ctx: Workspace | None = None,
) -> CheckInfo:
    """Add check ``name`` to the project (``replace`` overwrites one of the same name)."""
    ctx = workspace(ctx)
    project_name, book = _checks_of(ctx, project)
    check = Check(name=name, command=command, expect=expect, **({"timeout": timeout} if timeout else {}))
    with session(ctx, project_name, "check add", check=name, command=command, expect=expect.to_dict()) as op:
        checks = book.load()
        if any(c.name == name for c in checks) and not replace:
            raise AlreadyExists(
                f"project {project_name!r} already has a check called {name!r}",
                fix="choose another name, or replace it with `vml check add --replace`",
            )
        kept = [c for c in checks if c.name != name]
        position = next((i for i, c in enumerate(checks) if c.name == name), len(kept))
        kept.insert(position, check)
        book.save(kept)
        op.message = f"check {name}: {expect.describe()}"
        return CheckInfo.of(check)


def list_checks(project: str | None = None, *, ctx: Workspace | None = None) -> CheckList:
    """The project's checks, in the order they were added."""
    ctx = workspace(ctx)
    name, book = _checks_of(ctx, project)
    return CheckList(project=name, checks=[CheckInfo.of(c) for c in book.load()])


def remove_check(name: str, project: str | None = None, *, ctx: Workspace | None = None) -> CheckInfo:
    """Remove check ``name``; its past results stay in the logbook."""
    ctx = workspace(ctx)
    project_name, book = _checks_of(ctx, project)
    with session(ctx, project_name, "check rm", check=name) as op:
        checks = book.load()
        found = next((c for c in checks if c.name == name), None)
        if found is None:
            raise NotFound(f"project {project_name!r} has no check called {name!r}", fix="`vml check list`")
        book.save([c for c in checks if c.name != name])
        op.message = f"removed check {name}"
        return CheckInfo.of(found)


def last_check_results(project: str | None = None, *, ctx: Workspace | None = None) -> dict[str, StateChecks]:
    """State id -> its last check results, for every state of the project (``never run`` for the others)."""
    ctx = workspace(ctx)
    name, book = _checks_of(ctx, project)
    current = [c.name for c in book.load()]
    found = record.last_results(ctx.logbook, name)
    states = ctx.projects.get(name).states()
    return {
        state_id: StateChecks(record.summary_status(found.get(state_id, {}), current), found.get(state_id, {}))
        for state_id in states
    }
