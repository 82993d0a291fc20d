"""The record of one stored base image, and the disk format each catalog format name stands for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vmlog.errors import InvalidInput

# Image formats as catalogs name them -> the format qemu-img must be told (never probed).
QEMU_FORMATS = {
    "raw": "raw",
    "hdd": "raw",
    "img": "raw",
    "iso": "raw",
    "qcow2": "qcow2",
    "vmdk": "vmdk",
    "vdi": "vdi",
    "vhdx": "vhdx",
    "vpc": "vpc",
}


@dataclass(frozen=True)
class StoredImage:
    """One base image in the store; ``path`` is read-only and never changes for a given sha256."""

    sha256: str
    name: str
    version: str
    format: str
    size: int
    path: Path
    urls: tuple[str, ...] = field(default=())
    added: str = ""
    arch: str = "x86_64"

    @property
    def qemu_format(self) -> str:
        """The format to pass to qemu-img for this image (``hdd``/``iso`` are raw bytes)."""
        return qemu_format(self.format)

    def to_dict(self) -> dict:
        return {
            "sha256": self.sha256,
            "name": self.name,
            "version": self.version,
            "format": self.format,
            "size": self.size,
            "path": str(self.path),
            "urls": list(self.urls),
            "added": self.added,
            "arch": self.arch,
        }


def qemu_format(fmt: str) -> str:
    try:
        return QEMU_FORMATS[fmt]
    except KeyError:
        raise InvalidInput(
            f"image format {fmt!r} is not a disk format qemu-img can read",
            fix=f"use one of: {', '.join(sorted(QEMU_FORMATS))}",
        ) from None
