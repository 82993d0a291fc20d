"""Mailing state bundles: through the user's SMTP server, or handed to the desktop mail client."""

from vmlog.mail.client import open_in_mail_client
from vmlog.mail.settings import SmtpSettings
from vmlog.mail.smtp import DEFAULT_SIZE_LIMIT, fits_mail, largest_bundle, message_size, send_bundle

__all__ = [
    "DEFAULT_SIZE_LIMIT",
    "SmtpSettings",
    "fits_mail",
    "largest_bundle",
    "message_size",
    "open_in_mail_client",
    "send_bundle",
]
