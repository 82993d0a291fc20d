"""CernVM-FS content hashes: hex text with an optional algorithm suffix, and the ``data/XX/...`` layout.

A repository names every object by the hash of its stored (compressed) bytes. The text form is the
hex digest, followed by ``-rmd160`` or ``-shake128`` for non-SHA-1 algorithms; an object kind
suffix letter (``C`` catalog, ``X`` certificate, ``H`` history, ``P`` file chunk) is appended to
the file name on the server but is not part of the digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vmlog.releases.errors import BadCatalog

# Algorithm id as stored in catalog flags (bits 8-10), text suffix, digest size.
ALGORITHMS: dict[str, tuple[int, str, int]] = {
    "sha1": (0, "", 20),
    "rmd160": (1, "-rmd160", 20),
    "shake128": (2, "-shake128", 20),
}
_BY_ID = {ident: name for name, (ident, _, _) in ALGORITHMS.items()}

SUFFIX_CATALOG = "C"
SUFFIX_CERTIFICATE = "X"
SUFFIX_HISTORY = "H"
SUFFIX_PARTIAL = "P"
SUFFIX_NONE = ""


def new_hasher(algorithm: str) -> hashlib._Hash:
    """A streaming hasher for ``algorithm`` (callers feed it the stored, compressed bytes)."""
    if algorithm == "sha1":
        return hashlib.sha1()
    if algorithm == "rmd160":
        return hashlib.new("ripemd160")
    if algorithm == "shake128":
        return _Shake128()  # type: ignore[return-value]
    raise BadCatalog(f"unknown content hash algorithm {algorithm!r}", fix="use a repository hashed with sha1")


class _Shake128:
    """SHAKE-128 truncated to 160 bits, with the ``update/digest`` shape of the other hashers."""

    def __init__(self) -> None:
        self._h = hashlib.shake_128()

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest(20)

    def hexdigest(self) -> str:
        return self._h.hexdigest(20)


@dataclass(frozen=True)
class ContentHash:
    """One object name: algorithm, raw digest and the kind suffix used in its file name."""

    algorithm: str
    digest: bytes
    suffix: str = SUFFIX_NONE

    @classmethod
    def parse(cls, text: str, suffix: str = SUFFIX_NONE) -> ContentHash:
        """Read ``abcd...`` or ``abcd...-rmd160``; ``BadCatalog`` if it is not a well-formed hash."""
        text = text.strip()
        algorithm = "sha1"
        for name, (_, tail, _) in ALGORITHMS.items():
            if tail and text.endswith(tail):
                algorithm, text = name, text[: -len(tail)]
                break
        size = ALGORITHMS[algorithm][2]
        try:
            digest = bytes.fromhex(text)
        except ValueError:
            digest = b""
        if len(digest) != size:
            raise BadCatalog(f"malformed content hash {text!r}", fix="the repository data is corrupt; re-publish it")
        return cls(algorithm, digest, suffix)

    @classmethod
    def from_flags(cls, digest: bytes, flags: int, suffix: str = SUFFIX_NONE) -> ContentHash:
        """The hash of a catalog row: raw digest bytes, algorithm in flag bits 8-10."""
        ident = (flags >> 8) & 0x7
        if ident not in _BY_ID:
            raise BadCatalog(f"unknown hash algorithm id {ident} in a catalog entry")
        return cls(_BY_ID[ident], bytes(digest), suffix)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha1", suffix: str = SUFFIX_NONE) -> ContentHash:
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.digest(), suffix)

    @property
    def hex(self) -> str:
        """The text form without the kind suffix (what manifests and catalogs print)."""
        return self.digest.hex() + ALGORITHMS[self.algorithm][1]

    @property
    def object_path(self) -> str:
        """Where the object lives below the repository URL."""
        text = self.hex
        return f"data/{text[:2]}/{text[2:]}{self.suffix}"

    @property
    def cache_key(self) -> str:
        return self.hex + self.suffix

    def with_suffix(self, suffix: str) -> ContentHash:
        return ContentHash(self.algorithm, self.digest, suffix)

    def __str__(self) -> str:
        return self.hex + self.suffix


def md5_path_pair(path: str) -> tuple[int, int]:
    """The two signed 64-bit integers catalogs use as the key of ``path`` (MD5 split little-endian)."""
    digest = hashlib.md5(path.encode("utf-8")).digest()
    return (
        int.from_bytes(digest[:8], "little", signed=True),
        int.from_bytes(digest[8:], "little", signed=True),
    )
