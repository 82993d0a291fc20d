"""Check results in the logbook: one row per result, and reading back each state's last results.

A ``check run`` session row covers the whole run (and holds the project lock); each result is a
``check result`` row of its own, attached to the state it ran on, with the result in its args and
``ok`` (passed) or ``failed`` (diverged, error) as its outcome. So ``vml log`` shows every result,
and the last results of a state are the newest row per check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vmlog.checks.model import DIVERGED, ERROR, PASSED
from vmlog.checks.runner import CheckResult
from vmlog.logbook import Logbook

RUN_ACTION = "check run"
RESULT_ACTION = "check result"
NEVER_RUN = "never run"


def record(logbook: Logbook, project: str, run_id: int, result: CheckResult) -> None:
    """Write ``result`` as its own logbook row on its state, linked to the run's row by ``run``."""
    args = {**result.to_dict(), "run": run_id}
    args.pop("state")
    args.pop("state_label")
    row = logbook.begin(project, RESULT_ACTION, result.state_id, **args)
    message = f"{result.check}: {result.status} ({result.detail})"
    logbook.finish(row, "ok" if result.status == PASSED else "failed", message)


@dataclass(frozen=True)
class LastResult:
    """The newest recorded result of one check on one state."""

    check: str
    status: str
    observed: str | None
    detail: str
    when: float

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "observed": self.observed, "detail": self.detail,
                "when": self.when}


def last_results(logbook: Logbook, project: str) -> dict[str, dict[str, LastResult]]:
    """State id -> check name -> its newest result, from the logbook's ``check result`` rows."""
    found: dict[str, dict[str, LastResult]] = {}
    for entry in logbook.entries(project=project):
        if entry.action != RESULT_ACTION or entry.state_id is None:
            continue
        name = str(entry.args.get("check") or "")
        found.setdefault(entry.state_id, {})[name] = LastResult(
            check=name,
            status=str(entry.args.get("status") or ERROR),
            observed=entry.args.get("observed"),
            detail=str(entry.args.get("detail") or ""),
            when=entry.started,
        )
    return found


def summary_status(results: dict[str, LastResult], checks: list[str] | None = None) -> str:
    """One word for a state: ``diverged`` if any current check diverged, ``error``, ``passed``, or ``never run``.

    ``checks`` limits it to the checks the project has now (a removed check no longer counts).
    """
    relevant = [r for name, r in results.items() if checks is None or name in checks]
    if not relevant:
        return NEVER_RUN
    statuses = {r.status for r in relevant}
    for status in (DIVERGED, ERROR):
        if status in statuses:
            return status
    return PASSED
