"""A progress callback for the service's long operations, drawn as a rich status line on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from vmlog.cli.output import err
from vmlog.projects.driver import Progress


@contextmanager
def status(title: str) -> Iterator[Progress]:
    """Yield a ``progress(message, fraction)`` callback that updates one spinner line."""
    with err.status(title) as spinner:

        def progress(message: str, fraction: float | None = None) -> None:
            pct = f" {int(fraction * 100)}%" if fraction is not None else ""
            spinner.update(f"{title}: {message}{pct}")

        yield progress
