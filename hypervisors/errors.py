"""The root of the product's errors, and the errors raised by hypervisor backends.

Every error a user can meet derives from :class:`ReportableError`: it carries what happened
(``message``), what fixes it (``fix``, optional) and an ``exit_code`` of its own, so the command
line reports any of them the same way and a script can tell them apart by the code alone.

The root lives here, not in ``vmlog``, because ``hypervisors`` is the lower layer and may not
import ``vmlog``: with the root below both, ``HypervisorError`` and ``vmlog.errors.VmlogError`` are
branches of one tree, and a backend's error reaches the user as it was raised, with the backend's
own words and fix, instead of being re-wrapped at every place ``vmlog`` calls a backend.

Exit codes are distinct per class and listed in ``docs/errors.md``; a test holds the two together.
"""

from __future__ import annotations


class ReportableError(Exception):
    """Root of every product error; raised directly by nothing, so its code means "failed, cause unclassified"."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class HypervisorError(ReportableError):
    """A backend operation failed; the base of every backend error.

    ``backend`` names the backend that raised it, where known.
    """

    exit_code = 20

    def __init__(self, message: str, *, fix: str | None = None, backend: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.backend = backend


class BackendUnavailable(HypervisorError):
    """The backend's SDK, tool or daemon is missing or unreachable on this machine."""

    exit_code = 21


class Unsupported(HypervisorError):
    """The backend cannot do this operation at all (a capability it does not declare)."""

    exit_code = 22


class VMNotFound(HypervisorError):
    """No VM of that name is defined in the backend."""

    exit_code = 23


class VMExists(HypervisorError):
    """A VM of that name is already defined in the backend."""

    exit_code = 24


class InvalidState(HypervisorError):
    """The VM is in a state that does not allow the operation (e.g. resume a stopped VM)."""

    exit_code = 25


class OperationFailed(HypervisorError):
    """The backend tried and failed; the message carries the backend's own words."""

    exit_code = 26


class OperationTimeout(HypervisorError):
    """The operation did not finish in time (a guest that never answers, a hung tool)."""

    exit_code = 27


class UnknownBackend(HypervisorError):
    """A backend name that is neither a backend nor an alias of one: a usage error (sysexits EX_USAGE)."""

    exit_code = 64
