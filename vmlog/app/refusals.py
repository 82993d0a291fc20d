"""One logbook row for work refused before it began (a hostile bundle, image or signer): ``refused: why``.

Checks of input from outside run before anything is created, outside any session; without this a
refusal would leave no trace in ``vml log``, or (as before) rows of a project made and removed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypervisors.errors import ReportableError
from vmlog.bundles.errors import BundleRejected, Untrusted
from vmlog.errors import Cancelled, IntegrityError, InvalidInput
from vmlog.logbook.book import Logbook

# Errors that mean "this input is not accepted" (as opposed to a network or disk failure).
REFUSALS = (BundleRejected, Untrusted, IntegrityError, InvalidInput)


@contextmanager
def refusal_logged(logbook: Logbook, project: str | None, action: str = "state import", **args: Any) -> Iterator[None]:
    """One logbook row if the block fails: ``refused: why`` for a refusal, the error's text for other failures."""
    try:
        yield
    except ReportableError as exc:
        if not isinstance(exc, Cancelled):
            op = logbook.begin(project, action, None, **args)
            prefix = "refused: " if isinstance(exc, REFUSALS) else ""
            logbook.finish(op, "failed", prefix + exc.message)
        raise
