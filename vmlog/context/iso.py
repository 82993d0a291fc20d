"""Small ISO9660 images written in pure Python (pycdlib): the discs that carry a VM's context.

Rock Ridge and Joliet are both written so every guest sees the exact (lowercase, dashed) names;
the plain ISO9660 names are only a fallback. The image is written to a temp file and renamed into
place, so a crash never leaves half a seed attached to a VM.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pycdlib

from vmlog.errors import InvalidInput


def iso9660_name(name: str, *, is_file: bool) -> str:
    """An ISO9660 level-3 name for ``name`` (Rock Ridge and Joliet carry the real one)."""
    cleaned = re.sub(r"[^A-Z0-9_.]", "_", name.upper())
    if not is_file:
        return cleaned.replace(".", "_")[:31]
    stem, dot, ext = cleaned.rpartition(".")
    base = f"{stem.replace('.', '_')}.{ext}" if dot else f"{cleaned}."
    return base[:30] + ";1"


def write_iso(path: Path, files: Mapping[str, bytes], *, volume_id: str) -> Path:
    """Write an ISO labelled ``volume_id`` holding ``files`` (relative paths, directories allowed)."""
    path = Path(path)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=volume_id, sys_ident="LINUX")
    made: set[str] = set()
    try:
        for rel, data in sorted(files.items()):
            parts = rel.strip("/").split("/")
            if any(p in ("", ".", "..") for p in parts):
                raise InvalidInput(f"ISO path {rel!r} is not a plain relative path")
            iso_dir, joliet_dir = "", ""
            for part in parts[:-1]:
                iso_dir += "/" + iso9660_name(part, is_file=False)
                joliet_dir += "/" + part
                if iso_dir not in made:
                    iso.add_directory(iso_dir, rr_name=part, joliet_path=joliet_dir)
                    made.add(iso_dir)
            name = parts[-1]
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"{iso_dir}/{iso9660_name(name, is_file=True)}",
                rr_name=name,
                joliet_path=f"{joliet_dir}/{name}",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("wb") as f:
                iso.write_fp(f)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    finally:
        iso.close()
    return path
