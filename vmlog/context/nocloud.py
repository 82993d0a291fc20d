"""Write cloud-init NoCloud seeds: a small ISO9660 volume labelled ``cidata``.

cloud-init (and the vmlog test appliance) look for a filesystem with that label holding
``meta-data``, ``user-data`` and optionally ``network-config``. Joliet and Rock Ridge are both
written so every guest sees those exact lowercase names. Pure Python (pycdlib): no genisoimage.
"""

from __future__ import annotations

from pathlib import Path

from vmlog.context.iso import write_iso
from vmlog.errors import InvalidInput

VOLUME_ID = "cidata"


def build_nocloud_seed(path: Path, *, meta_data: str, user_data: str, network_config: str | None = None) -> Path:
    """Write the seed ISO at ``path`` (atomically: a temp file renamed into place) and return ``path``."""
    files = {"meta-data": meta_data, "user-data": user_data}
    if network_config is not None:
        files["network-config"] = network_config
    for name, text in files.items():
        if not isinstance(text, str):
            raise InvalidInput(f"NoCloud {name} must be text, got {type(text).__name__}")

    return write_iso(path, {name: text.encode() for name, text in files.items()}, volume_id=VOLUME_ID)
