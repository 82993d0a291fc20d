"""Ed25519 signatures over a bundle's manifest, the user's signing key, and the list of known signers.

The manifest holds the sha256 of every other member, so signing its exact bytes signs the bundle.
The signature travels as its own member (``manifest.sig``) next to the signer's public key and
name; the importer checks it and says whether the key is one the user already knows.

Files under the home's config dir::

    keys/signing-key.pem     the user's private key (0600), made on first use
    known-signers.json       {fingerprint: {"name": ..., "public_key": base64}}

The home's own key is always a known signer of that home: a bundle exported here imports here
without asking, even if ``known-signers.json`` does not list the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.files import atomic_write_bytes
from vmlog.errors import InvalidInput

ALGORITHM = "ed25519"
MAX_SIGNATURE_MEMBER = 16 << 10
OWN_KEY_NAME = "this home's own signing key"


def fingerprint(public_key: bytes) -> str:
    """A short stable id of a public key: the first 32 hex digits of its sha256."""
    return hashlib.sha256(public_key).hexdigest()[:32]


@dataclass(frozen=True)
class SigningKey:
    """The sender's Ed25519 key and the name shown to recipients."""

    private: Ed25519PrivateKey
    signer: str

    @property
    def public_bytes(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_bytes)

    @staticmethod
    def path_in(config_dir: Path) -> Path:
        return Path(config_dir) / "keys" / "signing-key.pem"

    @classmethod
    def load(cls, config_dir: Path, signer: str) -> SigningKey | None:
        """The key in ``config_dir/keys/signing-key.pem``, or None if this home has none yet."""
        path = cls.path_in(config_dir)
        if not path.exists():
            return None
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise InvalidInput(f"{path} is not an Ed25519 key", fix=f"move {path} away to make a new key")
        return cls(private, signer)

    @classmethod
    def load_or_create(cls, config_dir: Path, signer: str) -> SigningKey:
        """The key in ``config_dir/keys/signing-key.pem``, created (0600) if there is none yet."""
        path = cls.path_in(config_dir)
        existing = cls.load(config_dir, signer)
        if existing is not None:
            return existing
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        atomic_write_bytes(path, pem, mode=0o600)
        return cls(private, signer)

    def sign(self, manifest_bytes: bytes) -> bytes:
        """The ``manifest.sig`` member for these manifest bytes."""
        doc = {
            "algorithm": ALGORITHM,
            "signer": self.signer,
            "public_key": base64.b64encode(self.public_bytes).decode(),
            "signature": base64.b64encode(self.private.sign(manifest_bytes)).decode(),
        }
        return json.dumps(doc, indent=1).encode()


@dataclass(frozen=True)
class SignerInfo:
    """Who signed a bundle, as the signature claims, and whether the key is already known here."""

    name: str
    fingerprint: str
    public_key: str
    known: bool
    known_as: str | None = None


class KnownSigners:
    """The keys this user has accepted, by fingerprint (``config/known-signers.json``)."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = Path(config_dir)
        self.path = self.config_dir / "known-signers.json"

    def load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {self.path}: {exc}", fix=f"fix or remove {self.path}") from exc
        return data if isinstance(data, dict) else {}

    def add(self, name: str, public_key_b64: str) -> str:
        raw = base64.b64decode(public_key_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
        fp = fingerprint(raw)
        data = self.load()
        data[fp] = {"name": name, "public_key": public_key_b64}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, (json.dumps(data, indent=2) + "\n").encode())
        return fp

    def own_fingerprint(self) -> str | None:
        """The fingerprint of this home's own signing key, if it has one."""
        try:
            key = SigningKey.load(self.config_dir, "")
        except (InvalidInput, ValueError, OSError):
            return None
        return key.fingerprint if key is not None else None

    def lookup(self, fp: str) -> str | None:
        entry = self.load().get(fp)
        if isinstance(entry, dict):
            return entry.get("name")
        return OWN_KEY_NAME if fp == self.own_fingerprint() else None


def verify_signature(manifest_bytes: bytes, sig_member: bytes, known: KnownSigners | None) -> SignerInfo:
    """Check ``manifest.sig`` against the manifest bytes; raise :class:`BundleRejected` if it fails."""
    try:
        doc = json.loads(sig_member)
        if doc.get("algorithm") != ALGORITHM:
            raise BundleRejected("signature", f"unsupported signature algorithm {doc.get('algorithm')!r}")
        raw_key = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        name = str(doc.get("signer", ""))[:200]
        Ed25519PublicKey.from_public_bytes(raw_key).verify(signature, manifest_bytes)
    except BundleRejected:
        raise
    except InvalidSignature as exc:
        raise BundleRejected("signature", "the signature does not match the manifest (tampered bundle)") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleRejected("signature", f"the signature member is malformed ({exc})") from exc
    fp = fingerprint(raw_key)
    known_as = known.lookup(fp) if known is not None else None
    return SignerInfo(name, fp, base64.b64encode(raw_key).decode(), known_as is not None, known_as)
