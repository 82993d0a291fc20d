"""Signed "letters" of a CernVM-FS repository: the manifest and the whitelist, and their signature chain.

Both files share one shape: ASCII key lines, a line ``--``, the hex hash of the text before that
line, then a binary RSA signature. The manifest is signed by the repository certificate
(PKCS#1 v1.5 over SHA-1 of the printed hash); the whitelist is signed by the master key with a raw
PKCS#1 type-1 block around the printed hash, and lists the fingerprints of the certificates the
master key vouches for until its expiry date. A client trusts a manifest only through that chain:
master key -> whitelist (fresh, for this repository) -> certificate fingerprint -> manifest signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vmlog.releases.content_hash import SUFFIX_CATALOG, SUFFIX_CERTIFICATE, SUFFIX_HISTORY, ContentHash
from vmlog.releases.errors import BadCatalog, SignatureError

_SEPARATOR = b"\n--\n"
_TIME_FORMAT = "%Y%m%d%H%M%S"


@dataclass(frozen=True)
class Letter:
    """A letter split into its signed text, printed hash and signature."""

    text: bytes  # everything before the ``--`` line, with its final newline
    printed_hash: str
    signature: bytes

    @classmethod
    def split(cls, data: bytes, what: str) -> Letter:
        cut = data.find(_SEPARATOR)
        if cut < 0:
            raise SignatureError(f"the {what} is not signed (no '--' line)", fix="re-sign the repository")
        text = data[: cut + 1]
        rest = data[cut + len(_SEPARATOR) :]
        end = rest.find(b"\n")
        if end < 0:
            raise SignatureError(f"the {what} has no signature after its hash", fix="re-sign the repository")
        return cls(text, rest[:end].decode("ascii", "replace").strip(), rest[end + 1 :])

    def check_hash(self, what: str) -> None:
        """The printed hash must be the hash of the text (else the text was altered)."""
        try:
            printed = ContentHash.parse(self.printed_hash)
        except BadCatalog as exc:
            raise SignatureError(f"the {what} carries a malformed hash", fix="re-sign the repository") from exc
        if ContentHash.of(self.text, printed.algorithm) != printed:
            raise SignatureError(
                f"the {what} was altered: its text does not match its signed hash",
                fix="the server or a proxy serves a modified file; ask the repository maintainer",
            )

    def fields(self) -> list[tuple[str, str]]:
        """(key letter, value) pairs, in order; a bare line gives key '' and the line as value."""
        pairs = []
        for raw in self.text.decode("utf-8", "replace").splitlines():
            if raw:
                pairs.append((raw[0], raw[1:]))
        return pairs


@dataclass(frozen=True)
class Manifest:
    """The ``.cvmfspublished`` of a repository: which root catalog is current, at which revision."""

    root_catalog: ContentHash
    root_path_md5: str
    ttl: int
    revision: int
    name: str
    certificate: ContentHash | None
    history: ContentHash | None
    timestamp: int
    letter: Letter
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        letter = Letter.split(data, "manifest")
        values = dict(letter.fields())
        missing = [key for key in "CRDS" if key not in values]
        if missing:
            raise BadCatalog(
                f"the manifest lacks required field(s) {', '.join(missing)}",
                fix="the URL does not point at a CernVM-FS repository; check it with curl URL/.cvmfspublished",
            )
        try:
            return cls(
                root_catalog=ContentHash.parse(values["C"], SUFFIX_CATALOG),
                root_path_md5=values["R"],
                ttl=int(values["D"]),
                revision=int(values["S"]),
                name=values.get("N", ""),
                certificate=ContentHash.parse(values["X"], SUFFIX_CERTIFICATE) if values.get("X") else None,
                history=ContentHash.parse(values["H"], SUFFIX_HISTORY) if values.get("H") else None,
                timestamp=int(values.get("T", "0") or 0),
                letter=letter,
                extra={k: v for k, v in values.items() if k not in "CRDSNXHT"},
            )
        except ValueError as exc:
            raise BadCatalog(f"the manifest has a malformed number: {exc}") from exc


@dataclass(frozen=True)
class Whitelist:
    """The ``.cvmfswhitelist``: certificate fingerprints the master key trusts, and until when."""

    created: datetime
    expires: datetime
    repository: str
    fingerprints: frozenset[str]  # "AB:CD:..." upper case, SHA-1 of the DER certificate
    letter: Letter

    @classmethod
    def parse(cls, data: bytes) -> Whitelist:
        letter = Letter.split(data, "whitelist")
        lines = letter.text.decode("ascii", "replace").splitlines()
        if len(lines) < 3:
            raise SignatureError("the whitelist is truncated", fix="re-sign the whitelist with the master key")
        try:
            created = datetime.strptime(lines[0].strip(), _TIME_FORMAT).replace(tzinfo=UTC)
            expires_line = next(line for line in lines if line.startswith("E"))
            expires = datetime.strptime(expires_line[1:].strip(), _TIME_FORMAT).replace(tzinfo=UTC)
        except (ValueError, StopIteration) as exc:
            raise SignatureError(
                "the whitelist has no valid timestamp or expiry line", fix="re-sign the whitelist"
            ) from exc
        repository = next((line[1:].strip() for line in lines if line.startswith("N")), "")
        prints = frozenset(
            line.split("#")[0].strip().upper() for line in lines if ":" in line and len(line.split(":")) >= 20
        )
        return cls(created, expires, repository, prints, letter)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-1 of the DER certificate as ``AB:CD:...`` (the whitelist's notation)."""
    digest = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def load_master_keys(pem: bytes) -> list[rsa.RSAPublicKey]:
    """Every RSA public key in a PEM file (a repository may be signed by one of several master keys)."""
    keys = []
    marker = b"-----END PUBLIC KEY-----"
    for chunk in pem.split(marker):
        if b"-----BEGIN PUBLIC KEY-----" in chunk:
            key = serialization.load_pem_public_key(chunk + marker)
            if isinstance(key, rsa.RSAPublicKey):
                keys.append(key)
    if not keys:
        raise SignatureError("the master key file holds no RSA public key", fix="give the repository's .pub file")
    return keys


def verify_whitelist(
    whitelist: Whitelist, master_keys: list[rsa.RSAPublicKey], repository: str, *, now: datetime | None = None
) -> None:
    """Raise ``SignatureError`` unless a master key signed the whitelist, for ``repository``, unexpired."""
    whitelist.letter.check_hash("whitelist")
    printed = whitelist.letter.printed_hash.encode("ascii")
    for key in master_keys:
        try:
            recovered = key.recover_data_from_signature(whitelist.letter.signature, padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError):
            continue
        if recovered == printed:
            break
    else:
        raise SignatureError(
            f"the whitelist of {repository} is not signed by its master key",
            fix="check that the source was added with the right public key (vml release source add --key)",
        )
    if whitelist.repository and whitelist.repository != repository:
        raise SignatureError(
            f"the whitelist is for repository {whitelist.repository!r}, not {repository!r}",
            fix="the server serves another repository under this name; check the URL",
        )
    now = now or datetime.now(UTC)
    if whitelist.expires <= now:
        raise SignatureError(
            f"the whitelist of {repository} expired on {whitelist.expires:%Y-%m-%d %H:%M} UTC",
            fix="the repository maintainer must re-sign the whitelist (cvmfs_server resign); "
            "until then only cached releases can be mounted",
        )


def verify_manifest(manifest: Manifest, certificate_pem: bytes, whitelist: Whitelist) -> x509.Certificate:
    """Raise ``SignatureError`` unless the whitelisted certificate signed the manifest; return the cert."""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as exc:
        raise SignatureError("the repository certificate is not a valid X.509 certificate") from exc
    if certificate_fingerprint(cert) not in whitelist.fingerprints:
        raise SignatureError(
            "the repository certificate is not on the signed whitelist",
            fix="the manifest was signed by an unknown key; ask the repository maintainer",
        )
    manifest.letter.check_hash("manifest")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the repository certificate does not hold an RSA key")
    try:
        key.verify(
            manifest.letter.signature, manifest.letter.printed_hash.encode("ascii"), padding.PKCS1v15(), hashes.SHA1()
        )
    except InvalidSignature as exc:
        raise SignatureError(
            f"the manifest of {manifest.name or 'the repository'} has a bad signature",
            fix="the manifest was modified or signed with another key; do not use this server",
        ) from exc
    return cert
