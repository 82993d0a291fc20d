"""vmlog's domain errors: each carries what happened, the command that fixes it, and an exit code.

The CLI maps every :class:`VmlogError` to a short message and its exit code at one place; the GUI
shows the same message. Hypervisor errors keep their own hierarchy (``hypervisors.errors``).
"""

from __future__ import annotations


class VmlogError(Exception):
    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class NotFound(VmlogError):
    """A project, state, appliance or catalog that does not exist."""


class AlreadyExists(VmlogError):
    """A name that is already taken."""


class InvalidInput(VmlogError):
    """Arguments or files that do not make sense (bad ref, malformed manifest, ...)."""

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

    exit_code = 130
