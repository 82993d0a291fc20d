"""Sends a ``.vmlstate`` bundle as a mail attachment through the user's SMTP server.

A mail limit counts the message, not the file: the attachment travels base64-encoded (4 bytes per
3, in lines of 76 characters with CRLF) inside MIME headers and a text part. The size is checked
against the configured limit before connecting and against the ``SIZE`` the server advertises
before any data is sent, so a bundle is never refused with a 552 after minutes of upload.
"""

from __future__ import annotations

import email.policy
import math
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from vmlog.errors import InvalidInput, VmlogError
from vmlog.mail.settings import SmtpSettings

DEFAULT_SIZE_LIMIT = 25 * 1000 * 1000
MIME_TYPE = ("application", "x-vmlstate")
MIME_OVERHEAD = 4096  # headers, the text part, the MIME boundaries: measured below 2 KiB, with room to spare


def encoded_size(size: int) -> int:
    """Bytes a file of ``size`` bytes takes in a message: base64 in lines of 76 characters ending in CRLF."""
    encoded = 4 * math.ceil(size / 3)
    return encoded + 2 * math.ceil(encoded / 76)


def message_size(bundle_size: int) -> int:
    """Bytes of a message carrying a bundle of ``bundle_size`` bytes (a slight overestimate)."""
    return encoded_size(bundle_size) + MIME_OVERHEAD


def largest_bundle(limit: int) -> int:
    """The largest bundle whose message fits a mail limit of ``limit`` bytes (about 73% of it)."""
    room = max(limit - MIME_OVERHEAD, 0)
    lines = room // 78  # 76 characters and CRLF
    rest = max(room - 78 * lines - 2, 0)
    return 57 * lines + 3 * (rest // 4)


def fits_mail(bundle_size: int, limit: int = DEFAULT_SIZE_LIMIT) -> bool:
    return message_size(bundle_size) <= limit


class MailError(VmlogError):
    """The SMTP server refused the message or could not be reached."""

    exit_code = 76  # EX_PROTOCOL


def build_message(bundle: Path, to: str, sender: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(body)
    msg.add_attachment(bundle.read_bytes(), maintype=MIME_TYPE[0], subtype=MIME_TYPE[1], filename=bundle.name)
    return msg


def send_bundle(
    bundle: Path,
    to: str,
    settings: SmtpSettings,
    *,
    subject: str | None = None,
    body: str | None = None,
    size_limit: int | None = None,
    timeout: float = 60.0,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """Mail ``bundle`` to ``to``; refuse (before connecting) if it is over the size limit.

    Returns the Message-ID.
    """
    bundle = Path(bundle)
    limit = size_limit if size_limit is not None else settings.size_limit
    _refuse_if_too_large(bundle, message_size(bundle.stat().st_size), limit, "the mail limit")
    sender = settings.sender or settings.user
    if not sender:
        raise InvalidInput("no sender address is configured", fix="set 'sender' or 'user' in the mail settings")
    msg = build_message(
        bundle,
        to,
        sender,
        subject or f"vmlog state: {bundle.stem}",
        body or f"Attached is the vmlog state {bundle.name}.\nImport it with: vml state import {bundle.name}\n",
    )
    size = len(msg.as_bytes(policy=email.policy.SMTP))
    _refuse_if_too_large(bundle, size, limit, "the mail limit")
    context = ssl_context or settings.ssl_context()
    try:
        if settings.security == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        with server:
            if settings.security == "starttls":
                server.starttls(context=context)
            password = settings.password()
            if settings.user and password is not None:
                server.login(settings.user, password)
            _check_server_size(server, settings.host, bundle, size)
            server.send_message(msg)
    except ssl.SSLCertVerificationError as exc:
        raise MailError(
            f"could not mail {bundle.name}: the certificate of {settings.host}:{settings.port} was not"
            f" accepted ({exc.verify_message or exc.reason})",
            fix="check that --host is the name on the server's certificate; if the server uses a private CA,"
            " trust it with `vml config mail --ca-file /path/to/ca.pem`",
        ) from exc
    except InvalidInput:
        raise
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(
            f"could not mail {bundle.name}: {settings.host}:{settings.port} said: {exc}",
            fix="check --security and --port: 587 with starttls, 465 with ssl",
        ) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(
            f"could not mail {bundle.name} through {settings.host}:{settings.port}: {exc}",
            fix="check the SMTP settings (host, port, security, user and password), or use --client",
        ) from exc
    return str(msg["Message-ID"])


def _refuse_if_too_large(bundle: Path, size: int, limit: int, whose: str) -> None:
    if size <= limit:
        return
    raise InvalidInput(
        f"{bundle.name} is {bundle.stat().st_size / 1e6:.1f} MB, a {size / 1e6:.1f} MB message once encoded"
        f" for mail (base64 and MIME), over the {limit / 1e6:.1f} MB of {whose}"
        f" (bundles up to {largest_bundle(limit) / 1e6:.1f} MB fit)",
        fix="share the file another way (a shared folder, a file-transfer link), or export an "
        "incremental bundle with --since STATE the recipient already has",
    )


def _check_server_size(server: smtplib.SMTP, host: str, bundle: Path, size: int) -> None:
    """Refuse before sending data when the message is over the ``SIZE`` the server advertised (RFC 1870)."""
    server.ehlo_or_helo_if_needed()
    advertised = server.esmtp_features.get("size", "").strip()
    if advertised.isdigit() and int(advertised) > 0:
        _refuse_if_too_large(bundle, size, int(advertised), f"the limit {host} advertises (SIZE)")
