"""The errors of state bundles: a bundle rejected as malformed or hostile, and one nobody trusts."""

from __future__ import annotations

from vmlog.errors import IntegrityError, VmlogError


class BundleRejected(IntegrityError):
    """A ``.vmlstate`` file that is malformed, tampered with or hostile; nothing was written.

    ``reason`` is a stable slug (``traversal``, ``link``, ``digest``, ``bomb``, ...) so callers and
    tests can tell rejections apart without parsing the message.
    """

    exit_code = 40

    def __init__(self, reason: str, message: str, *, fix: str | None = None) -> None:
        super().__init__(
            f"rejected state bundle: {message}",
            fix=fix or "ask the sender for a new bundle; do not import this file",
        )
        self.reason = reason


class Untrusted(VmlogError):
    """A bundle that is unsigned or signed by an unknown key, and the user did not accept it.

    Not an :class:`IntegrityError`: the bundle may be intact; it is the sender who is not known.
    """

    exit_code = 77  # EX_NOPERM
