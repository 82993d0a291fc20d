"""Mail a bundle through a real SMTP server on 127.0.0.1 (aiosmtpd) and import the attachment."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from bundle_fixtures import write_bundle

from hypervisors import qemu_img
from vmlog.bundles import BundleReader, LocalReference
from vmlog.errors import InvalidInput
from vmlog.mail import SmtpSettings, send_bundle
from vmlog.mail.client import client_command, open_in_mail_client
from vmlog.mail.smtp import MailError


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alice@example.org",
        b"s3cret",
    )
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_mailed_bundle_arrives_and_imports(chain, smtp_server, tmp_path: Path, monkeypatch) -> None:
    inbox, port = smtp_server
    monkeypatch.setenv("VMLOG_SMTP_PASSWORD", "s3cret")
    bundle = write_bundle(chain, tmp_path / "after-calibration.vmlstate")
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", user="alice@example.org")
    settings.save(tmp_path / "config")
    loaded = SmtpSettings.load(tmp_path / "config")
    assert "s3cret" not in (tmp_path / "config" / "mail.json").read_text()

    send_bundle(bundle, "bob@example.org", loaded)

    assert len(inbox.messages) == 1
    mail_from, rcpts, raw = inbox.messages[0]
    assert (mail_from, rcpts) == ("alice@example.org", ["bob@example.org"])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "after-calibration.vmlstate"
    received = tmp_path / "bob" / "received.vmlstate"
    received.parent.mkdir()
    received.write_bytes(attachment.get_content())
    base = Path(shutil.copy(chain.base, tmp_path / "bob" / "base.raw"))
    result = BundleReader(received).materialise(tmp_path / "bob" / "state", base=LocalReference(base, "raw"))
    assert qemu_img.compare(result.disks["system"], "qcow2", chain.layer2, "qcow2")


def test_wrong_password_is_a_clear_error(chain, smtp_server, tmp_path: Path, monkeypatch) -> None:
    inbox, port = smtp_server
    monkeypatch.setenv("VMLOG_SMTP_PASSWORD", "wrong")
    bundle = write_bundle(chain, tmp_path / "s.vmlstate")
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", user="alice@example.org")
    with pytest.raises(MailError) as info:
        send_bundle(bundle, "bob@example.org", settings, timeout=5)
    assert "could not mail" in str(info.value)
    assert inbox.messages == []


def test_bundle_over_limit_is_refused_before_connecting(chain, smtp_server, tmp_path: Path) -> None:
    inbox, port = smtp_server
    bundle = write_bundle(chain, tmp_path / "s.vmlstate")
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", user="a@example.org", size_limit=1000)
    with pytest.raises(InvalidInput) as info:
        send_bundle(bundle, "bob@example.org", settings)
    assert "over the" in info.value.message and "--since" in info.value.fix
    assert inbox.messages == []


def test_client_hand_off_runs_xdg_email_with_attachment(tmp_path: Path, monkeypatch) -> None:
    """A stand-in xdg-email on PATH records the arguments the desktop client would get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "args.txt"
    script = bin_dir / "xdg-email"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    bundle = tmp_path / "s.vmlstate"
    bundle.write_bytes(b"x")
    open_in_mail_client(bundle, "bob@example.org")
    args = record.read_text().splitlines()
    assert args[args.index("--attach") + 1] == str(bundle.resolve())
    assert args[-1] == "bob@example.org"
    assert client_command(bundle, "b@x", "s", "b", platform="darwin")[:3] == ["open", "-a", "Mail"]
