"""Running service calls off the UI thread: one pool task per job, progress and outcome as Qt signals.

A service function takes ``progress=`` (a callback) and ``cancel=`` (a ``threading.Event``); the
job passes both down, so cancelling sets the event and the service stops at its next check and
raises :class:`vmlog.errors.Cancelled`. Generators are supported too: each yielded value is
reported as progress and the generator's return value is the result. Signals are delivered to the
receiver's thread (queued), so slots always run on the UI thread.

A job is handed to ``QThreadPool.start`` as a plain callable: Qt wraps it in a runnable it owns and
frees after the call returns. The runner keeps every job it started until the pool thread has left
``run`` and the UI thread has seen ``done``, then lets go of it on the UI thread, so a job's signal
object is never freed while a pool thread still uses it, nor from a pool thread.
"""

from __future__ import annotations

import inspect
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThreadPool, Signal

from vmlog.errors import Cancelled


def when_alive(owner: QObject, fn: Callable[..., Any]) -> Callable[..., None]:
    """``fn`` guarded by ``owner``: called only while ``owner``'s Qt object exists.

    A job may end after the page or dialog that started it is gone (the window closed, a test's widget
    freed); its slot must then do nothing rather than touch a deleted widget.
    """

    def call(*args: Any) -> None:
        if shiboken6.isValid(owner):
            fn(*args)

    return call


@dataclass(frozen=True)
class Failure:
    """A worker's exception as the UI shows it: a short message, the fix, and the folded details."""

    message: str
    fix: str | None
    details: str
    exception: BaseException

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        message = getattr(exc, "message", None) or str(exc).strip() or type(exc).__name__
        fix = getattr(exc, "fix", None)
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(message=str(message).splitlines()[0], fix=fix, details=details, exception=exc)


class JobSignals(QObject):
    """What a job tells the UI. Exactly one of finished/errored/cancelled is emitted, then ``done``."""

    progress = Signal(object)
    finished = Signal(object)
    errored = Signal(object)  # a Failure
    cancelled = Signal()
    done = Signal()


class Job:
    """One call of a service function on the pool; ``cancel()`` asks it to stop cleanly."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        title: str = "",
        pass_progress: bool = True,
        pass_cancel: bool = True,
        **kwargs: Any,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.title = title
        self.cancel_event = threading.Event()
        self.signals = JobSignals()
        self._pass_progress = pass_progress
        self._pass_cancel = pass_cancel
        self.result: Any = None
        self.failure: Failure | None = None
        self.was_cancelled = False
        self.finished_event = threading.Event()
        self.returned = threading.Event()  # set as the very last thing the pool thread does

    @property
    def cancellable(self) -> bool:
        """Whether ``cancel()`` can stop the work: the service watches the event, or the job is a generator."""
        return self._pass_cancel or inspect.isgeneratorfunction(self.fn)

    def cancel(self) -> None:
        self.cancel_event.set()

    def _report(self, *values: Any) -> None:
        self.signals.progress.emit(values[0] if len(values) == 1 else values)

    def run(self) -> None:  # runs on a pool thread
        try:
            self._run()
        finally:
            self.returned.set()

    def _run(self) -> None:
        kwargs = dict(self.kwargs)
        if self._pass_progress:
            kwargs["progress"] = self._report
        if self._pass_cancel:
            kwargs["cancel"] = self.cancel_event
        try:
            result = self.fn(*self.args, **kwargs)
            if inspect.isgenerator(result):
                result = self._drain(result)
        except Cancelled:
            self.was_cancelled = True
            self.finished_event.set()
            self.signals.cancelled.emit()
        except BaseException as exc:  # every failure must reach the user, not vanish in a thread
            self.failure = Failure.from_exception(exc)
            self.finished_event.set()
            self.signals.errored.emit(self.failure)
        else:
            self.result = result
            self.finished_event.set()
            self.signals.finished.emit(result)
        self.signals.done.emit()

    def _drain(self, gen: Any) -> Any:
        try:
            while True:
                if self.cancel_event.is_set():
                    gen.close()
                    raise Cancelled("cancelled")
                self.signals.progress.emit(next(gen))
        except StopIteration as stop:
            return stop.value


class JobRunner(QObject):
    """Starts jobs on a thread pool and keeps them alive until they are done."""

    job_started = Signal(object)
    job_done = Signal(object)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self.active: list[Job] = []
        self.background: list[Job] = []
        self.started: list[Job] = []  # every job until its pool thread has returned

    def start(self, job: Job) -> Job:
        """Run a job the user sees (listed in the jobs panel, failures shown)."""
        self.active.append(job)
        job.signals.done.connect(lambda: self._forget(job))
        self.job_started.emit(job)
        return self._launch(job)

    def start_quiet(self, job: Job) -> Job:
        """Run a background job (a refresh) that the jobs panel does not list."""
        self.background.append(job)
        job.signals.done.connect(lambda: self.background.remove(job) if job in self.background else None)
        return self._launch(job)

    def _launch(self, job: Job) -> Job:
        self._purge()
        self.started.append(job)
        self.pool.start(job.run)
        return job

    def _purge(self) -> None:
        """Let go (on this, the UI thread) of jobs whose pool thread is done with them."""
        self.started = [job for job in self.started if not job.returned.is_set() or job in self.active]

    def _forget(self, job: Job) -> None:
        if job in self.active:
            self.active.remove(job)
        self.job_done.emit(job)

    def cancel_all(self) -> None:
        for job in list(self.active):
            job.cancel()

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)

    def idle(self) -> bool:
        """No job of this runner is still on a pool thread (a test the UI thread can poll without blocking)."""
        return all(job.returned.is_set() for job in self.started)
