"""Write cloud-init NoCloud seeds: a small ISO9660 volume labelled ``cidata``.

cloud-init (and the vmlog test appliance) look for a filesystem with that label holding
``meta-data``, ``user-data`` and optionally ``network-config``. Joliet and Rock Ridge are both
written so every guest sees those exact lowercase names. Pure Python (pycdlib): no genisoimage.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pycdlib

from vmlog.errors import InvalidInput

VOLUME_ID = "cidata"


def build_nocloud_seed(path: Path, *, meta_data: str, user_data: str, network_config: str | None = None) -> Path:
    """Write the seed ISO at ``path`` (atomically: a temp file renamed into place) and return ``path``."""
    path = Path(path)
    files = {"meta-data": meta_data, "user-data": user_data}
    if network_config is not None:
        files["network-config"] = network_config
    for name, text in files.items():
        if not isinstance(text, str):
            raise InvalidInput(f"NoCloud {name} must be text, got {type(text).__name__}")

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_ID, sys_ident="LINUX")
    for name, text in files.items():
        data = text.encode()
        # ISO9660 level-3 names are upper case with a version; Rock Ridge and Joliet carry the real name.
        iso_name = name.upper().replace("-", "_") + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), f"/{iso_name}", rr_name=name, joliet_path=f"/{name}")

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
