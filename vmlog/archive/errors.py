"""The error of project archives: an archive refused as damaged, tampered with or hostile, nothing written."""

from __future__ import annotations

from vmlog.errors import IntegrityError


class ArchiveRejected(IntegrityError):
    """A ``.vmlarchive`` file that is damaged, tampered with or hostile; nothing was written to the home.

    ``reason`` is a stable slug (``traversal``, ``digest``, ``truncated``, ``backing``, ...) so callers
    and tests can tell refusals apart without parsing the message.
    """

    exit_code = 42

    def __init__(self, reason: str, message: str, *, fix: str | None = None) -> None:
        super().__init__(
            f"rejected project archive: {message}",
            fix=fix or "use an intact copy of the archive (`vml project archive --verify FILE` checks one)",
        )
        self.reason = reason
