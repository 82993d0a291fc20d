"""A progress callback for the service's long operations, drawn as a rich status line on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.text import Text

from vmlog.app.types import Progress
from vmlog.cli.output import err


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
