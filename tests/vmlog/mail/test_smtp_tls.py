"""Mail over TLS for real: aiosmtpd on 127.0.0.1 with a certificate from a CA made in the test.

The server offers AUTH only once the connection is encrypted (STARTTLS on the submission port, or
implicit SSL); the client trusts the test CA through ``SmtpSettings.ca_file``, and refuses a
certificate it cannot verify with an error naming the fix.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from vmlog.cli.main import app
from vmlog.errors import InvalidInput
from vmlog.mail import SmtpSettings, send_bundle
from vmlog.mail.smtp import MailError

USER, PASSWORD = "alice@example.org", "s3cret"


@dataclass(frozen=True)
class CertificateFiles:
    ca_file: Path  # the CA certificate the client is told to trust
    cert_file: Path  # the server's certificate (for 127.0.0.1 only), signed by the CA
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    """A CA and a server certificate whose only name is the IP address 127.0.0.1."""
    root = tmp_path_factory.mktemp("ca")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("vmlog test CA"))
        .issuer_name(_name("vmlog test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = CertificateFiles(root / "ca.pem", root / "server.pem", root / "server.key")
    ca.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, bool]] = []  # (mechanism, was the connection encrypted)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((mechanism, server.transport.get_extra_info("ssl_object") is not None))
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(params=["starttls", "ssl"])
def tls_server(request, test_ca: CertificateFiles) -> Iterator[tuple[Inbox, int, str]]:
    """A submission server that requires STARTTLS before anything, or an implicit-SSL server."""
    inbox = Inbox()
    port = _free_port()
    common = {"hostname": "127.0.0.1", "port": port, "authenticator": inbox.authenticate}
    if request.param == "starttls":
        controller = Controller(
            inbox,
            tls_context=test_ca.server_context(),
            require_starttls=True,
            auth_require_tls=True,
            **common,
        )
    else:
        # every byte is encrypted here; aiosmtpd 1.4 only counts STARTTLS as TLS for auth_require_tls
        controller = Controller(inbox, ssl_context=test_ca.server_context(), auth_require_tls=False, **common)
    controller.start()
    try:
        yield inbox, port, request.param
    finally:
        controller.stop()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "after-calibration.vmlstate"
    path.write_bytes(b"VMLSTATE test payload\n" * 100)
    return path


def test_mail_over_tls_with_the_trusted_ca(
    tls_server, test_ca: CertificateFiles, bundle: Path, tmp_path: Path, monkeypatch
) -> None:
    inbox, port, security = tls_server
    monkeypatch.setenv("VMLOG_SMTP_PASSWORD", PASSWORD)
    SmtpSettings(
        host="127.0.0.1", port=port, security=security, user=USER, ca_file=str(test_ca.ca_file)
    ).save(tmp_path / "config")
    settings = SmtpSettings.load(tmp_path / "config")
    assert settings.ca_file == str(test_ca.ca_file)

    send_bundle(bundle, "bob@example.org", settings, timeout=10)

    assert inbox.logins and all(encrypted for _, encrypted in inbox.logins)
    ((mail_from, rcpts, raw),) = inbox.messages
    assert (mail_from, rcpts) == (USER, ["bob@example.org"])
    (attachment,) = email.message_from_bytes(raw, policy=email.policy.default).iter_attachments()
    assert attachment.get_content() == bundle.read_bytes()


def test_untrusted_certificate_is_refused_with_the_fix(tls_server, bundle: Path, monkeypatch) -> None:
    """Without the test CA the system trust store does not know the certificate: nothing is sent."""
    inbox, port, security = tls_server
    monkeypatch.setenv("VMLOG_SMTP_PASSWORD", PASSWORD)
    settings = SmtpSettings(host="127.0.0.1", port=port, security=security, user=USER)
    with pytest.raises(MailError) as info:
        send_bundle(bundle, "bob@example.org", settings, timeout=10)
    assert "certificate" in info.value.message and "--ca-file" in info.value.fix
    assert inbox.messages == [] and inbox.logins == []


def test_hostname_mismatch_is_refused_with_the_fix(
    tls_server, test_ca: CertificateFiles, bundle: Path, monkeypatch
) -> None:
    """The certificate names 127.0.0.1 only; reaching the same server as ``localhost`` is refused."""
    inbox, port, security = tls_server
    monkeypatch.setenv("VMLOG_SMTP_PASSWORD", PASSWORD)
    settings = SmtpSettings(
        host="localhost", port=port, security=security, user=USER, ca_file=str(test_ca.ca_file)
    )
    with pytest.raises(MailError) as info:
        send_bundle(bundle, "bob@example.org", settings, timeout=10)
    assert "localhost" in info.value.message and "certificate" in info.value.message
    assert "--host" in info.value.fix
    assert inbox.messages == [] and inbox.logins == []


def test_plain_connection_gets_no_auth_from_a_tls_only_server(tls_server, bundle: Path, monkeypatch) -> None:
    """Security 'none' against the STARTTLS-only server: the login is never offered, the error says why."""
    inbox, port, security = tls_server
    if security != "starttls":
        pytest.skip("an implicit-SSL server does not speak plain SMTP at all")
    monkeypatch.setenv("VMLOG_SMTP_PASSWORD", PASSWORD)
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", user=USER)
    with pytest.raises(MailError) as info:
        send_bundle(bundle, "bob@example.org", settings, timeout=10)
    assert "--security" in info.value.fix
    assert inbox.messages == [] and inbox.logins == []


def test_unreadable_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    settings = SmtpSettings(host="127.0.0.1", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidInput) as info:
        settings.ssl_context()
    assert "missing.pem" in info.value.message and "--ca-file" in info.value.fix


def test_config_mail_sets_and_clears_the_ca_file(test_ca: CertificateFiles, vmlog_home: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(app, ["config", "mail", "--help"], terminal_width=200).output
    assert "--ca-file" in help_text
    result = runner.invoke(
        app,
        [
            "config",
            "mail",
            "--host",
            "smtp.example.org",
            "--user",
            USER,
            "--ca-file",
            str(test_ca.ca_file),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert SmtpSettings.load(vmlog_home / "config").ca_file == str(test_ca.ca_file.resolve())
    result = runner.invoke(app, ["config", "mail", "--ca-file", ""])
    assert result.exit_code == 0, result.output
    assert SmtpSettings.load(vmlog_home / "config").ca_file is None
    result = runner.invoke(app, ["config", "mail", "--ca-file", str(vmlog_home / "nope.pem")])
    assert result.exit_code != 0
    assert SmtpSettings.load(vmlog_home / "config").ca_file is None
