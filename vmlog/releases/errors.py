"""Errors of the release-mount manager, refined from :mod:`vmlog.errors` so the CLI maps them as usual."""

from __future__ import annotations

from vmlog.errors import DownloadError, IntegrityError, InvalidInput, NotFound, VmlogError


class SignatureError(IntegrityError):
    """A manifest, whitelist or certificate that does not prove the repository is what it claims."""

    exit_code = 50


class DigestMismatch(IntegrityError):
    """An object whose content does not hash to the digest that names it."""

    exit_code = 51


class SourceUnreachable(DownloadError):
    """The release server cannot be reached (and nothing usable is cached)."""

    exit_code = 52


class ReleaseNotFound(NotFound):
    """No release with that name in the source."""

    exit_code = 53


class BadCatalog(InvalidInput):
    """A catalog or manifest that cannot be parsed."""

    exit_code = 54


class MountError(VmlogError):
    """The lazy filesystem could not be mounted or unmounted."""

    exit_code = 71  # EX_OSERR
