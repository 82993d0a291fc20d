"""The contextualisation disk of a project: a NoCloud ``cidata`` seed or CernVM's ``config-2`` drive.

Both are small ISO9660 images attached to the VM as a CD-ROM; the appliance reads them at boot.
Rendering is deterministic, so re-writing the seed of an unchanged context gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pycdlib

from vmlog.context.model import Context
from vmlog.context.nocloud import build_nocloud_seed
from vmlog.context.userdata import CERNVM_ISO_LABEL, cernvm_iso_layout, render_nocloud
from vmlog.errors import InvalidInput

SEED_KINDS = ("nocloud", "cernvm")


def _iso_part(name: str, *, is_file: bool) -> str:
    """An ISO9660 level-3 name for ``name`` (Rock Ridge and Joliet carry the real one)."""
    cleaned = re.sub(r"[^A-Z0-9_.]", "_", name.upper())
    if not is_file:
        return cleaned.replace(".", "_")[:31]
    stem, dot, ext = cleaned.rpartition(".")
    base = f"{stem.replace('.', '_')}.{ext}" if dot else f"{cleaned}."
    return base[:30] + ";1"


def build_config_drive(path: Path, files: dict[str, bytes], *, label: str = CERNVM_ISO_LABEL) -> Path:
    """Write an ISO labelled ``label`` holding ``files`` (relative paths, with directories) at ``path``."""
    path = Path(path)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=label, sys_ident="LINUX")
    made: set[str] = set()
    for rel, data in sorted(files.items()):
        parts = rel.strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise InvalidInput(f"config drive path {rel!r} is not a plain relative path")
        iso_dir, joliet_dir = "", ""
        for part in parts[:-1]:
            iso_dir += "/" + _iso_part(part, is_file=False)
            joliet_dir += "/" + part
            if iso_dir not in made:
                iso.add_directory(iso_dir, rr_name=part, joliet_path=joliet_dir)
                made.add(iso_dir)
        name = parts[-1]
        iso.add_fp(
            io.BytesIO(data),
            len(data),
            f"{iso_dir}/{_iso_part(name, is_file=True)}",
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


def write_seed(kind: str, context: Context, path: Path) -> Path:
    """Render ``context`` for an appliance whose catalog says ``context: kind`` into the ISO at ``path``."""
    if kind == "nocloud":
        meta_data, user_data = render_nocloud(context)
        return build_nocloud_seed(path, meta_data=meta_data, user_data=user_data)
    if kind == "cernvm":
        return build_config_drive(path, cernvm_iso_layout(context))
    raise InvalidInput(f"no seed for context kind {kind!r}", fix=f"use one of {', '.join(SEED_KINDS)}")
