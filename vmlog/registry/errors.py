"""The errors of talking to an OCI registry: unreachable or refusing, and credentials it does not accept."""

from __future__ import annotations

from vmlog.errors import DownloadError


class RegistryError(DownloadError):
    """The registry could not be reached, answered outside the distribution spec, or lacks what was asked."""

    exit_code = 60


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or none were found) for the repository."""

    exit_code = 61


class BlobMismatch(RegistryError):
    """What the registry sent is not what its descriptor names: other bytes, more or fewer of them."""

    exit_code = 62
