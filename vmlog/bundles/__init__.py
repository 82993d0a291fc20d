"""State bundles (``.vmlstate``): one file with a state's disk deltas, VM spec and logbook excerpt.

:class:`BundleWriter` exports, :class:`BundleReader` verifies and imports untrusted bundles.
The names are imported on first use (:mod:`vmlog.lazy_exports`): every command that touches a
project imports this package's disk-delta and NBD modules, and only exports and imports need the
reader and writer (tar, signatures: 50 ms more).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlog.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from vmlog.bundles.errors import BundleRejected
    from vmlog.bundles.members import ReadLimits
    from vmlog.bundles.reader import BundleReader, LocalReference, MaterialisedState, VerifiedBundle
    from vmlog.bundles.signing import KnownSigners, SignerInfo, SigningKey
    from vmlog.bundles.writer import MAIL_ATTACHMENT_LIMIT, BaseImageRef, BundleSummary, BundleWriter, SinceRef

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

__getattr__, __dir__ = lazy_exports(__name__, {
    "vmlog.bundles.errors": ("BundleRejected",),
    "vmlog.bundles.members": ("ReadLimits",),
    "vmlog.bundles.reader": ("BundleReader", "LocalReference", "MaterialisedState", "VerifiedBundle"),
    "vmlog.bundles.signing": ("KnownSigners", "SignerInfo", "SigningKey"),
    "vmlog.bundles.writer": ("MAIL_ATTACHMENT_LIMIT", "BaseImageRef", "BundleSummary", "BundleWriter", "SinceRef"),
})  # fmt: skip
