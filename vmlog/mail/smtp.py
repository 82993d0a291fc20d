"""Sends a ``.vmlstate`` bundle as a mail attachment through the user's SMTP server."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from vmlog.errors import InvalidInput, VmlogError
from vmlog.mail.settings import SmtpSettings

DEFAULT_SIZE_LIMIT = 25 * 1000 * 1000
MIME_TYPE = ("application", "x-vmlstate")


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
    size = bundle.stat().st_size
    if size > limit:
        raise InvalidInput(
            f"{bundle.name} is {size / 1e6:.1f} MB, over the {limit / 1e6:.0f} MB mail limit",
            fix="share the file another way (a shared folder, a file-transfer link), or export an "
            "incremental bundle with --since STATE the recipient already has",
        )
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
            server.send_message(msg)
    except ssl.SSLCertVerificationError as exc:
        raise MailError(
            f"could not mail {bundle.name}: the certificate of {settings.host}:{settings.port} was not"
            f" accepted ({exc.verify_message or exc.reason})",
            fix="check that --host is the name on the server's certificate; if the server uses a private CA,"
            " trust it with `vml config mail --ca-file /path/to/ca.pem`",
        ) from exc
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
