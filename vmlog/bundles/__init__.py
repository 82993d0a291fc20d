"""State bundles (``.vmlstate``): one file with a state's disk deltas, VM spec and logbook excerpt.

:class:`BundleWriter` exports, :class:`BundleReader` verifies and imports untrusted bundles.
"""

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
