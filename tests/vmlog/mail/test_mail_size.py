"""The mail size check counts what travels (base64 and MIME) and honours the SIZE the server advertises."""

from __future__ import annotations

import email
import email.policy
import os
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from vmlog.errors import InvalidInput
from vmlog.mail import SmtpSettings, fits_mail, largest_bundle, message_size, send_bundle
from vmlog.mail.smtp import build_message, encoded_size


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(envelope.original_content)
        return "250 OK"


@pytest.fixture
def limited_server():
    """A real SMTP server on 127.0.0.1 that advertises and enforces SIZE 200000."""
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, data_size_limit=200_000)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _bundle(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "s.vmlstate"
    path.write_bytes(os.urandom(size))
    return path


@pytest.mark.parametrize("size", [0, 1, 57, 58, 1000, 150_000, 1_000_003])
def test_the_estimate_covers_the_real_message(tmp_path: Path, size: int) -> None:
    body = "Attached is the vmlog state s.vmlstate.\nImport it with: vml state import s.vmlstate\n"
    msg = build_message(_bundle(tmp_path, size), "bob@example.org", "alice@example.org", "vmlog state: s", body)
    real = len(msg.as_bytes(policy=email.policy.SMTP))
    assert encoded_size(size) <= real <= message_size(size) <= real + 4096


def test_a_20_mb_bundle_does_not_fit_a_25_mb_limit() -> None:
    assert not fits_mail(20_000_000, 25_000_000)  # 26.7 MB once encoded: the server would answer 552
    assert fits_mail(largest_bundle(25_000_000), 25_000_000)
    assert not fits_mail(largest_bundle(25_000_000) + 3, 25_000_000)
    assert 18_200_000 < largest_bundle(25_000_000) < 18_300_000  # 57 bytes per 78 sent


def test_the_servers_advertised_size_is_honoured_before_any_data(limited_server, tmp_path: Path) -> None:
    inbox, port = limited_server
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", sender="alice@example.org")
    with pytest.raises(InvalidInput) as refused:  # 160 kB is under our 25 MB limit, but not once encoded under SIZE
        send_bundle(_bundle(tmp_path, 160_000), "bob@example.org", settings)
    assert "advertises" in refused.value.message and "base64" in refused.value.message
    assert inbox.messages == []
    send_bundle(_bundle(tmp_path, largest_bundle(200_000)), "bob@example.org", settings)
    (raw,) = inbox.messages
    (attachment,) = email.message_from_bytes(raw, policy=email.policy.default).iter_attachments()
    assert len(attachment.get_content()) == largest_bundle(200_000)


def test_the_configured_limit_counts_the_encoding_too(limited_server, tmp_path: Path) -> None:
    inbox, port = limited_server
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", sender="a@example.org", size_limit=100_000)
    with pytest.raises(InvalidInput, match="once encoded"):
        send_bundle(_bundle(tmp_path, 90_000), "bob@example.org", settings)  # 90 kB < 100 kB, but 122 kB to send
    assert inbox.messages == []
