"""Mail settings as the GUI and CLI read them: the SMTP host in use and the attachment limit bundles are sized for."""

from __future__ import annotations

from pathlib import Path

from vmlog.bundles import MAIL_ATTACHMENT_LIMIT
from vmlog.errors import VmlogError
from vmlog.mail import SmtpSettings
from vmlog.workspace import Workspace, workspace

__all__ = ["MAIL_ATTACHMENT_LIMIT", "SmtpSettings", "load_settings", "save_settings", "smtp_host"]


def load_settings(ctx: Workspace | None = None) -> SmtpSettings | None:
    """The saved SMTP settings, or None when there are none yet (or they cannot be read)."""
    try:
        return SmtpSettings.load(workspace(ctx).home.config)
    except VmlogError:
        return None


def save_settings(settings: SmtpSettings, ctx: Workspace | None = None) -> Path:
    """Save ``settings`` as the ones `vml state send` uses; returns the file written."""
    return settings.save(workspace(ctx).home.config)


def smtp_host(ctx: Workspace | None = None) -> str | None:
    """The SMTP server mail goes through, or None when none is configured (or the settings cannot be read)."""
    try:
        return SmtpSettings.load(workspace(ctx).home.config).host
    except VmlogError:
        return None
