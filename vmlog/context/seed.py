"""The contextualisation disk of a project: a NoCloud ``cidata`` seed or CernVM's ``config-2`` drive.

Both are small ISO9660 images attached to the VM as a CD-ROM; the appliance reads them at boot.
Rendering is deterministic, so re-writing the seed of an unchanged context gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from vmlog.context.iso import write_iso
from vmlog.context.model import Context
from vmlog.context.nocloud import build_nocloud_seed
from vmlog.context.userdata import CERNVM_ISO_LABEL, cernvm_iso_layout, render_nocloud
from vmlog.errors import InvalidInput

SEED_KINDS = ("nocloud", "cernvm")


def build_config_drive(path: Path, files: dict[str, bytes], *, label: str = CERNVM_ISO_LABEL) -> Path:
    """Write an ISO labelled ``label`` holding ``files`` (relative paths, with directories) at ``path``."""
    return write_iso(path, files, volume_id=label)


def write_seed(kind: str, context: Context, path: Path) -> Path:
    """Render ``context`` for an appliance whose catalog says ``context: kind`` into the ISO at ``path``."""
    if kind == "nocloud":
        meta_data, user_data = render_nocloud(context)
        return build_nocloud_seed(path, meta_data=meta_data, user_data=user_data)
    if kind == "cernvm":
        return build_config_drive(path, cernvm_iso_layout(context))
    raise InvalidInput(f"no seed for context kind {kind!r}", fix=f"use one of {', '.join(SEED_KINDS)}")
