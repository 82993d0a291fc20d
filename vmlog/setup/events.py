"""The phases ``setup`` goes through and the events it reports to whoever watches (CLI, GUI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# In the order a first run goes through them; a re-run skips the ones it does not need.
PHASES = ("backend", "download", "verify", "convert", "project", "contextualise", "boot", "ready", "done")


@dataclass(frozen=True)
class SetupEvent:
    """One step of progress: ``done``/``total`` are bytes during ``download``, else None."""

    phase: str
    message: str
    done: int | None = None
    total: int | None = None


SetupProgress = Callable[[SetupEvent], None]


def no_events(event: SetupEvent) -> None:
    """The progress callback used when nobody watches."""
