"""Hands a bundle to the desktop mail client: ``xdg-email`` on Linux, Mail on macOS, MAPI-less Windows.

Nothing is sent from here: the user's own client opens a new message with the file attached.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

from vmlog.errors import InvalidInput


def client_command(bundle: Path, to: str, subject: str, body: str, *, platform: str | None = None) -> list[str]:
    """The command that opens a new message with ``bundle`` attached on this platform."""
    platform = platform or sys.platform
    bundle = Path(bundle).resolve()
    if platform.startswith("linux") or platform.startswith("freebsd"):
        tool = shutil.which("xdg-email")
        if tool is None:
            raise InvalidInput("xdg-email is not installed", fix="apt-get install xdg-utils, or send with SMTP")
        return [tool, "--subject", subject, "--body", body, "--attach", str(bundle), to]
    if platform == "darwin":
        # Mail opens a new message with the file attached; the recipient is typed there.
        return ["open", "-a", "Mail", str(bundle)]
    if platform == "win32":
        # No standard way to attach through mailto:; show the file so it can be dragged into a message.
        query = urllib.parse.urlencode({"subject": subject, "body": body}, quote_via=urllib.parse.quote)
        return ["cmd", "/c", "start", "", f"mailto:{to}?{query}", "&", "explorer", f"/select,{bundle}"]
    raise InvalidInput(f"no known mail client hand-off on {platform}", fix="send with SMTP settings instead")


def open_in_mail_client(bundle: Path, to: str, *, subject: str | None = None, body: str | None = None) -> None:
    bundle = Path(bundle)
    cmd = client_command(
        bundle,
        to,
        subject or f"vmlog state: {bundle.stem}",
        body or f"Import the attached state with: vml state import {bundle.name}",
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise InvalidInput(
            f"the mail client could not be opened: {proc.stderr.strip() or proc.returncode}",
            fix="configure SMTP settings and send without --client",
        )
