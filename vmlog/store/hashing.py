"""The sha256 that names a stored image: of a file on disk, or of bytes as they are copied in."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HASH_CHUNK = 4 << 20


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def copy_hashed(src: Path, dest: Path) -> tuple[str, int]:
    """Copy ``src`` to the new file ``dest`` (fsynced), hashing the very bytes written; return (sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fin, open(dest, "xb", buffering=0) as fout:
        while n := fin.readinto(buf):
            chunk = view[:n]
            digest.update(chunk)
            fout.write(chunk)
            size += n
        os.fsync(fout.fileno())
    return digest.hexdigest(), size
