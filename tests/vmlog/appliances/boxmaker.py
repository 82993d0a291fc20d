"""Boxes and OVAs packed the way the real tools pack them, from the real metadata in tests/fixtures/real.

The disks are made here with qemu-img; everything else (metadata.json, Vagrantfile, box.ovf, VMDK
descriptors, manifests) is the real tools' output or packed in their member order and naming.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from hypervisors import qemu_img

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real"
VAGRANT = REAL / "vagrant"
OVA = REAL / "ova"


def raw_disk(path: Path, size: int = 8 << 20, *, marks: int = 3) -> Path:
    """A sparse raw disk with a few recognisable 4 KiB blocks (so comparisons mean something)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for i in range(marks):
            fh.seek((size // (marks + 1)) * (i + 1))
            fh.write(os.urandom(4096))
    return path


def convert(raw: Path, dest: Path, fmt: str, subformat: str | None = None) -> Path:
    options = {"subformat": subformat} if subformat else None
    return qemu_img.convert(raw, dest, src_format="raw", dest_format=fmt, options=options)


def pack(path: Path, members: list[tuple[str, bytes | Path]], *, compress: bool = True, dot_dir: bool = False) -> bytes:
    """A tar of ``members`` (name in the archive, bytes or file) in that order, gzipped like ``tar czf``.

    ``dot_dir`` adds the ``./`` directory entry first, as ``tar czf x.box -C dir .`` does.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        if dot_dir:
            info = tarfile.TarInfo(".")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, content in members:
            data = content.read_bytes() if isinstance(content, Path) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(buf.getvalue(), compresslevel=1) if compress else buf.getvalue()
    path.write_bytes(blob)
    return blob


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vagrant_metadata(name: str, versions: dict[str, list[dict]]) -> dict:
    """Box catalog metadata as Vagrant Cloud serves it (``{"name", "versions": [{"version", "providers"}]}``)."""
    return {
        "name": name,
        "description": f"{name} for tests",
        "versions": [{"version": v, "status": "active", "providers": p} for v, p in versions.items()],
    }


def provider(name: str, url: str, blob: bytes, **extra) -> dict:
    return {"name": name, "url": url, "checksum_type": "sha256", "checksum": sha256(blob), **extra}


def write_json(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path
