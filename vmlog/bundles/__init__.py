"""State bundles (``.vmlstate``): one file with a state's disk deltas, VM spec and logbook excerpt.

:class:`BundleWriter` exports, :class:`BundleReader` verifies and imports untrusted bundles.

The names below are imported from their modules when first used, not with the package: the
modules that read a state's disks (``delta``, ``nbd``) sit in this package too, and every command
that touches a project imports them; reading and signing bundles (cryptography, tar) is 50 ms more
that only exports and imports need.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmlog.bundles.errors import BundleRejected
    from vmlog.bundles.members import ReadLimits
    from vmlog.bundles.reader import BundleReader, LocalReference, MaterialisedState, VerifiedBundle
    from vmlog.bundles.signing import KnownSigners, SignerInfo, SigningKey
    from vmlog.bundles.writer import MAIL_ATTACHMENT_LIMIT, BaseImageRef, BundleSummary, BundleWriter, SinceRef

_HOMES = {
    "vmlog.bundles.errors": ("BundleRejected",),
    "vmlog.bundles.members": ("ReadLimits",),
    "vmlog.bundles.reader": ("BundleReader", "LocalReference", "MaterialisedState", "VerifiedBundle"),
    "vmlog.bundles.signing": ("KnownSigners", "SignerInfo", "SigningKey"),
    "vmlog.bundles.writer": ("MAIL_ATTACHMENT_LIMIT", "BaseImageRef", "BundleSummary", "BundleWriter", "SinceRef"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "MAIL_ATTACHMENT_LIMIT",
    "BaseImageRef",
    "BundleReader",
    "BundleRejected",
    "BundleSummary",
    "BundleWriter",
    "KnownSigners",
    "LocalReference",
    "MaterialisedState",
    "ReadLimits",
    "SignerInfo",
    "SigningKey",
    "SinceRef",
    "VerifiedBundle",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
