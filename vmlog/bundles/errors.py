"""The error a rejected bundle raises: one class, a short ``reason`` per kind of rejection."""

from __future__ import annotations

from vmlog.errors import IntegrityError


class BundleRejected(IntegrityError):
    """A ``.vmlstate`` file that is malformed, tampered with or hostile; nothing was written.

    ``reason`` is a stable slug (``traversal``, ``link``, ``digest``, ``bomb``, ...) so callers and
    tests can tell rejections apart without parsing the message.
    """

    def __init__(self, reason: str, message: str, *, fix: str | None = None) -> None:
        super().__init__(
            f"rejected state bundle: {message}",
            fix=fix or "ask the sender for a new bundle; do not import this file",
        )
        self.reason = reason
