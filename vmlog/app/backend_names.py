"""Backend names as a user types them: a name that is no backend is bad input, refused before any work.

The registry raises ``UnknownBackend`` (exit 64) for any name it does not know, including one read
from a project record or settings written by another vmlog. A name typed on the command line or
in a dialog is the user's argument, so it is reported as ``InvalidInput`` (exit 2, the code of
click's own usage errors), with the registry's words and fix, and before anything is pulled or made.
"""

from __future__ import annotations

from hypervisors import registry
from hypervisors.errors import UnknownBackend
from vmlog.errors import InvalidInput


def typed_backend(name: str) -> str:
    """The registry name of the backend the user named (an alias such as libvirt gives kvm); ``InvalidInput`` else."""
    try:
        return registry.canonical_name(name)
    except UnknownBackend as err:
        raise InvalidInput(err.message, fix=err.fix) from None
