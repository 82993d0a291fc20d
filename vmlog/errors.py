"""vmlog's domain errors: each carries what happened, the command that fixes it, and an exit code.

:class:`VmlogError` is a branch of the product's one error tree, rooted at
:class:`hypervisors.errors.ReportableError` (the root lives there because ``hypervisors`` may not
import ``vmlog``). The CLI maps every error of the tree to ``error: message``, ``fix: ...`` and the
class's exit code at one place; the GUI shows the same message and fix. Each class has an exit code
of its own, listed with its meaning in ``docs/errors.md``; sysexits codes are used where one fits.
"""

from __future__ import annotations

from hypervisors.errors import ReportableError

__all__ = [
    "AlreadyExists",
    "Busy",
    "Cancelled",
    "DownloadError",
    "IntegrityError",
    "InvalidInput",
    "NotFound",
    "ReportableError",
    "VmlogError",
]


class VmlogError(ReportableError):
    """A vmlog operation failed; the base of vmlog's errors, raised itself where no narrower class fits."""

    exit_code = 10


class NotFound(VmlogError):
    """A project, state, appliance or catalog that does not exist."""

    exit_code = 11


class AlreadyExists(VmlogError):
    """A name that is already taken."""

    exit_code = 12


class InvalidInput(VmlogError):
    """Arguments or files that do not make sense (bad ref, malformed manifest, ...): click's usage code."""

    exit_code = 2


class Busy(VmlogError):
    """Another vmlog process is changing the same project right now."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class IntegrityError(VmlogError):
    """A digest, signature or size that does not match: the data is not what it claims to be."""

    exit_code = 65  # EX_DATAERR


class DownloadError(VmlogError):
    """A download that failed for good (every mirror tried)."""

    exit_code = 69  # EX_UNAVAILABLE


class Cancelled(VmlogError):
    """The user interrupted a long operation; nothing was left half-done."""

    exit_code = 130  # as a shell reports a command ended by Ctrl-C (128 + SIGINT)
