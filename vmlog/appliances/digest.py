"""The digest a catalog declares for a download: its algorithm and hex value, checked on parse."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from vmlog.errors import InvalidInput

DIGEST_ALGOS = ("sha256", "sha512")


@dataclass(frozen=True)
class Digest:
    algo: str
    hex: str

    @classmethod
    def parse(cls, digest: tuple[str, str]) -> Digest:
        algo, value = digest[0].lower(), digest[1].strip().lower()
        if algo not in DIGEST_ALGOS:
            raise InvalidInput(f"unsupported digest algorithm {algo!r}", fix="use sha256 or sha512")
        length = hashlib.new(algo).digest_size * 2
        if len(value) != length or any(c not in "0123456789abcdef" for c in value):
            raise InvalidInput(f"malformed {algo} digest {value!r}", fix=f"give {length} hex digits")
        return cls(algo, value)

    @property
    def key(self) -> str:
        """The name of this download's partial file, lock and alias: ``<algo>-<hex>``."""
        return f"{self.algo}-{self.hex}"
