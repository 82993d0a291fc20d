"""SMTP settings kept in the home's config dir (``mail.json``); the password lives in the keyring.

The password is looked up in the system keyring (service ``vmlog-smtp``, the SMTP user as the
account) when the ``keyring`` package and a backend are available; ``VMLOG_SMTP_PASSWORD``
overrides it, for headless machines and tests. It is never written to ``mail.json``.

The server's certificate is checked against the system's trusted CAs, or only against ``ca_file``
(a PEM bundle) when the server uses a private CA (a lab or company mail server).
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from vmlog.bundles.files import atomic_write_bytes
from vmlog.errors import InvalidInput

KEYRING_SERVICE = "vmlog-smtp"
PASSWORD_ENV = "VMLOG_SMTP_PASSWORD"
Security = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: Security = "starttls"
    user: str | None = None
    sender: str | None = None  # From: address; defaults to the user
    size_limit: int = 25 * 1000 * 1000
    ca_file: str | None = None  # PEM file of the CA(s) to trust instead of the system's; None: system trust

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "ssl"):
            raise InvalidInput(f"unknown SMTP security {self.security!r}", fix="use one of: none, starttls, ssl")

    @staticmethod
    def path(config_dir: Path) -> Path:
        return Path(config_dir) / "mail.json"

    @classmethod
    def load(cls, config_dir: Path) -> SmtpSettings:
        path = cls.path(config_dir)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise InvalidInput(
                "no SMTP server is configured",
                fix="vml config mail --host smtp.example.org --user you@example.org (or send with --client)",
            ) from exc
        except ValueError as exc:
            raise InvalidInput(f"{path} is not valid JSON: {exc}", fix=f"fix or remove {path}") from exc
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidInput(f"{path} has unknown settings: {exc}", fix=f"fix or remove {path}") from exc

    def ssl_context(self) -> ssl.SSLContext:
        """The context that verifies the server: ``ca_file`` if set, else the system's trusted CAs."""
        if not self.ca_file:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cafile=str(Path(self.ca_file).expanduser()))
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInput(
                f"the SMTP CA file {self.ca_file} cannot be used: {exc}",
                fix="vml config mail --ca-file /path/to/ca.pem (a PEM file), or --ca-file '' for system trust",
            ) from exc

    def save(self, config_dir: Path) -> Path:
        path = self.path(config_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(asdict(self), indent=2) + "\n").encode(), mode=0o600)
        return path

    def password(self) -> str | None:
        """The SMTP password: ``$VMLOG_SMTP_PASSWORD``, else the keyring, else None."""
        env = os.environ.get(PASSWORD_ENV)
        if env is not None:
            return env
        if not self.user:
            return None
        try:
            import keyring
            from keyring.errors import KeyringError
        except ImportError:
            return None
        try:
            return keyring.get_password(KEYRING_SERVICE, self.user)
        except KeyringError:
            return None

    def store_password(self, password: str) -> None:
        """Put the password in the system keyring (raises if there is no usable keyring)."""
        try:
            import keyring
            from keyring.errors import KeyringError
        except ImportError as exc:
            raise InvalidInput(
                "the keyring package is not installed", fix=f"pip install keyring, or set {PASSWORD_ENV}"
            ) from exc
        if not self.user:
            raise InvalidInput("set an SMTP user before storing a password")
        try:
            keyring.set_password(KEYRING_SERVICE, self.user, password)
        except KeyringError as exc:
            raise InvalidInput(
                f"no usable system keyring: {exc}", fix=f"unlock your keyring, or set {PASSWORD_ENV}"
            ) from exc
