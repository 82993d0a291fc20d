"""Progress and interruption for the service's long operations: a rich status line, and a Ctrl-C that ends promptly."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.text import Text

from vmlog.app.types import Progress
from vmlog.cli.output import err

T = TypeVar("T")


@contextmanager
def status(title: str) -> Iterator[Progress]:
    """Yield a ``progress(message, fraction)`` callback that updates one spinner line.

    The line is given as ``Text``: a spinner reads a plain string as markup, and the message often
    names a project or state.
    """
    with err.status(Text(title)) as spinner:

        def progress(message: str, fraction: float | None = None) -> None:
            pct = f" {int(fraction * 100)}%" if fraction is not None else ""
            spinner.update(Text(f"{title}: {message}{pct}"))

        yield progress


class Interrupted(Exception):
    """Ctrl-C ended the job; it was asked to stop and given ``grace`` seconds to do so."""

    def __init__(self, finished: bool) -> None:
        super().__init__("interrupted")
        self.finished = finished  # whether the job stopped within the grace period


def run_interruptible(
    job: Callable[[threading.Event], T],
    *,
    grace: float | None = 1.0,
    on_interrupt: Callable[[], None] | None = None,
) -> T:
    """Run ``job(cancel)`` on a worker thread; Ctrl-C sets ``cancel`` and raises :class:`Interrupted` promptly.

    The signal only ever reaches this thread, which does nothing but wait: it can never land inside
    the job's locks, queues or files. The job gets ``grace`` seconds to stop cleanly (it checks
    ``cancel`` between reads); then the command ends anyway, the job being a daemon thread. With
    ``grace=None`` the job is waited for until it returns (its result or error is then the outcome).
    """
    cancel = threading.Event()
    finished = threading.Event()  # not Thread.join: an interrupted join can report a live thread as ended
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = job(cancel)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=work, name="vml-job", daemon=True).start()
    try:
        while not finished.wait(0.2):
            pass
    except KeyboardInterrupt:
        cancel.set()
        if on_interrupt is not None:
            on_interrupt()
        if grace is None:  # wait for the job's own clean-up; a second Ctrl-C gives up
            while not finished.wait(0.2):
                pass
        else:
            try:
                stopped = finished.wait(grace)
            except KeyboardInterrupt:
                stopped = False
            raise Interrupted(stopped) from None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
