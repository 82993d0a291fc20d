"""Mail settings as the GUI and CLI read them: the SMTP host in use and the attachment limit bundles are sized for."""

from __future__ import annotations

from vmlog.bundles import MAIL_ATTACHMENT_LIMIT
from vmlog.errors import VmlogError
from vmlog.mail import SmtpSettings
from vmlog.workspace import Workspace, workspace

__all__ = ["MAIL_ATTACHMENT_LIMIT", "smtp_host"]


def smtp_host(ctx: Workspace | None = None) -> str | None:
    """The SMTP server mail goes through, or None when none is configured (or the settings cannot be read)."""
    try:
        return SmtpSettings.load(workspace(ctx).home.config).host
    except VmlogError:
        return None
