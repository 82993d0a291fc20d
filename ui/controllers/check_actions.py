"""The Projects page's reproduction checks: run them on one state or on every state, off the UI thread.

The same :func:`vmlog.app.checks.run_checks` as ``vml check run``; each state boots in a throw-away clone,
so this is long work in a job with progress. When it ends the tree's Checks column shows the fresh
results and the status line (and the desktop, for a long run) says whether everything passed.
:class:`CheckActions` is mixed into the projects controller, whose ``run``, ``page``, ``window``,
``project`` and ``_label`` it uses.
"""

from __future__ import annotations

from typing import Any

from ui.statetree.checks import CheckMark, read_check_marks, show_check_marks
from ui.statetree.model import CHECKS_COLUMN
from ui.workers import Job
from vmlog.app import checks as app_checks
from vmlog.app.types import Workspace

STATUS_SECONDS = 15_000  # ms the status line keeps the verdict


def checks_job(project: str, state_refs: list[str] | None, *, every: bool, ctx: Workspace | None = None,
               progress: Any = None) -> tuple[app_checks.CheckRun, dict[str, CheckMark]]:
    """Run the checks, then read the project's check marks again (both off the UI thread)."""
    done = 0

    def on_result(result: Any) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(f"{result.state}: {result.check} {result.status} ({done} result{'s' if done != 1 else ''})",
                     None)

    def on_step(message: str) -> None:
        if progress is not None:
            progress(message, None)

    run = app_checks.run_checks(state_refs, project=project, every=every, ctx=ctx, on_step=on_step,
                                on_result=on_result)
    return run, read_check_marks(project, ctx)


def verdict(run: app_checks.CheckRun) -> tuple[str, str]:
    """(title, sentence) the user reads when a run ends: passed, diverged, or not evaluated."""
    if run.diverged:
        states = sorted({r.state for r in run.diverged})
        return "Checks diverged", f"{run.summary()}: look at {', '.join(states[:5])}."
    if run.not_evaluated:
        return "Checks not evaluated", f"{run.summary()}: a clone did not boot or its agent did not answer."
    return "Checks passed", f"{run.summary()} on {run.backend} in {run.seconds:.0f} s."


class CheckActions:
    """Run checks on the selected state, or on all the project's states."""

    def run_checks(self, state_id: str | None = None) -> Job | None:
        """Checks on ``state_id``, or on every state of the project when it is None."""
        name = self.project
        if name is None:
            return None
        what = self._label(state_id) if state_id else f"every state of {name}"
        return self.run(f"Running checks on {what}", checks_job, name, [state_id] if state_id else None,
                        every=state_id is None, on_result=self._checked)

    def _checked(self, result: tuple[app_checks.CheckRun, dict[str, CheckMark]]) -> None:
        run, marks = result
        self.last_check_run = run
        if run.project == self.project:
            show_check_marks(self.page.tree.state_model, marks, CHECKS_COLUMN)
        title, text = verdict(run)
        self.window.statusBar().showMessage(f"{run.project}: {title.lower()}, {text}", STATUS_SECONDS)
        self.window.notifier.notify(f"{run.project}: {title.lower()}", text)
