"""Running a project's checks in one booted guest through its agent, and the result of each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypervisors.errors import ReportableError
from hypervisors.guest import GuestAgent
from vmlog.checks.model import ERROR, Check, judge
from vmlog.projects.model import State


@dataclass(frozen=True)
class CheckResult:
    """One check on one state: passed, diverged (with what came out instead), or error (could not be run)."""

    check: str
    state_id: str
    state: str  # the state's label: short id and name
    status: str
    expected: str
    observed: str | None
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "state": self.state_id,
            "state_label": self.state,
            "status": self.status,
            "expected": self.expected,
            "observed": self.observed,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


def run_one(agent: GuestAgent, check: Check, state: State) -> CheckResult:
    """Run ``check`` in the guest and judge its output; an agent that fails makes the result an error."""
    started = time.monotonic()
    try:
        answer = agent.shell(check.command, timeout=check.timeout)
    except ReportableError as exc:
        return errored(check, state, f"the guest agent could not run it: {exc.message}", time.monotonic() - started)
    verdict = judge(check.expect, answer.exit_code, answer.stdout.decode("utf-8", errors="replace"))
    return CheckResult(
        check=check.name,
        state_id=state.id,
        state=state.label(),
        status=verdict.status,
        expected=check.expect.describe(),
        observed=verdict.observed,
        detail=verdict.detail,
        seconds=time.monotonic() - started,
    )


def run_all(agent: GuestAgent, checks: list[Check], state: State) -> Iterator[CheckResult]:
    """Each check in turn, yielded as soon as it is judged (so each is recorded even if a later one hangs)."""
    for check in checks:
        yield run_one(agent, check, state)


def errored(check: Check, state: State, why: str, seconds: float = 0.0) -> CheckResult:
    """The result of a check that could not be evaluated on ``state`` (no clone, no agent)."""
    return CheckResult(
        check=check.name,
        state_id=state.id,
        state=state.label(),
        status=ERROR,
        expected=check.expect.describe(),
        observed=None,
        detail=why,
        seconds=seconds,
    )
