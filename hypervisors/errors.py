"""Errors raised by hypervisor backends: each one says what happened and what fixes it."""

from __future__ import annotations


class HypervisorError(Exception):
    """Base of every backend error.

    ``message`` says what happened, ``fix`` (optional) says what the user can do about it.
    ``exit_code`` lets a command line map the error without knowing its class.
    """

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None, backend: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.backend = backend

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class BackendUnavailable(HypervisorError):
    """The backend's SDK, tool or daemon is missing or unreachable on this machine."""

    exit_code = 3


class Unsupported(HypervisorError):
    """The backend cannot do this operation at all (a capability it does not declare)."""

    exit_code = 4


class VMNotFound(HypervisorError):
    """No VM of that name is defined in the backend."""


class VMExists(HypervisorError):
    """A VM of that name is already defined in the backend."""


class InvalidState(HypervisorError):
    """The VM is in a state that does not allow the operation (e.g. resume a stopped VM)."""


class OperationFailed(HypervisorError):
    """The backend tried and failed; the message carries the backend's own words."""


class OperationTimeout(HypervisorError):
    """The operation did not finish in time (a guest that never answers, a hung tool)."""
