"""Signed "letters" of a CernVM-FS repository: the manifest and the whitelist, and their signature chain.

Both files share one shape: ASCII key lines, a line ``--``, the hex hash of the text before that
line, then a binary RSA signature. The manifest is signed by the repository certificate
(PKCS#1 v1.5 over SHA-1 of the printed hash); the whitelist is signed by the master key with a raw
PKCS#1 type-1 block around the printed hash, and lists the fingerprints of the certificates the
master key vouches for until its expiry date. A client trusts a manifest only through that chain:
master key -> whitelist (fresh, for this repository) -> certificate fingerprint -> manifest signature.
"""

from __future__ import annotations

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
    """The ``.cvmfswhitelist``: certificate fingerprints the master key trusts, and until when.

    Read as the cvmfs client reads it (whitelist.cc): a 14-digit creation stamp, an ``E`` expiry
    line valid to the hour (minutes and seconds are ignored, so the whitelist is expired from the
    start of its expiry hour), the ``N`` repository-name line, optional ``Vpkcs7``/``Wcachain``
    lines, then one fingerprint per line in the repository's hash algorithm
    (``AB:CD:..:EF`` for SHA-1, ``AB:..:EF-RMD160`` or ``..-SHAKE128`` otherwise).
    """

    created: datetime
    expires: datetime  # the start of the expiry hour: expired from then on
    repository: str
    fingerprints: frozenset[ContentHash]
    letter: Letter

    @classmethod
    def parse(cls, data: bytes) -> Whitelist:
        letter = Letter.split(data, "whitelist")
        lines = letter.text.decode("ascii", "replace").splitlines()
        if len(lines) < 3:
            raise SignatureError("the whitelist is truncated", fix="re-sign the whitelist with the master key")
        try:
            if len(lines[0]) != 14 or len(lines[1]) != 15 or not lines[1].startswith("E"):
                raise ValueError("stamp lines")
            created = datetime.strptime(lines[0], _TIME_FORMAT).replace(tzinfo=UTC)
            expires = datetime.strptime(lines[1][1:11], "%Y%m%d%H").replace(tzinfo=UTC)
        except ValueError as exc:
            raise SignatureError(
                "the whitelist has no valid timestamp or expiry line", fix="re-sign the whitelist"
            ) from exc
        if not lines[2].startswith("N") or not lines[2][1:].strip():
            raise SignatureError(
                "the whitelist names no repository (its third line must be N<repository>)",
                fix="re-sign the whitelist with `cvmfs_server resign`",
            )
        prints = frozenset(p for p in (fingerprint_of_line(line) for line in lines[3:]) if p is not None)
        return cls(created, expires, lines[2][1:], prints, letter)


def fingerprint_of_line(line: str) -> ContentHash | None:
    """A whitelist fingerprint line as a content hash (what precedes a blank or ``#``, colons dropped)."""
    text = line
    for stop in (" ", "\t", "#"):
        text = text.split(stop, 1)[0]
    text = text.replace(":", "").lower()
    if not text:
        return None
    try:
        return ContentHash.parse(text)
    except BadCatalog:
        return None


def certificate_fingerprint(cert: x509.Certificate, algorithm: str = "sha1") -> str:
    """The DER certificate's hash as the whitelist prints it: ``AB:CD:...`` plus ``-RMD160``/``-SHAKE128``."""
    content = ContentHash.of(cert.public_bytes(serialization.Encoding.DER), algorithm)
    digest = content.digest.hex().upper()
    pairs = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return pairs + content.hex[len(digest) :].upper()


def is_listed(cert: x509.Certificate, whitelist: Whitelist) -> bool:
    """True if one of the whitelist's fingerprints is the certificate's hash in that fingerprint's algorithm."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return any(ContentHash.of(der, p.algorithm) == p for p in whitelist.fingerprints)


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
    if whitelist.repository != repository:
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
    if not is_listed(cert, whitelist):
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
