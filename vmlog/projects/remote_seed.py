"""A remote project's seed ISO: written here by set-up, put on the project's host as a volume the VM reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypervisors.spec import VMSpec
from vmlog.projects.remote_layers import RemoteLayerStore, seed_volume_name
from vmlog.projects.store import ProjectFiles

SEED_LABEL = "seed"


def upload_seed(files: ProjectFiles, seed: Path, *, only_missing: bool = False) -> bool:
    """Upload ``seed`` (read back before it counts) and point the VM's seed drive at its volume; True if done.

    Nothing happens for a local project, a VM without a seed drive, or (``only_missing``) a seed already there.
    """
    if not isinstance(files.layers, RemoteLayerStore):
        return False
    project = files.load()
    spec = VMSpec.from_dict(project.spec)
    name = seed_volume_name(project)
    if not any(disk.label == SEED_LABEL for disk in spec.disks) or not seed.is_file():
        return False
    if only_missing and files.layers.storage.exists(name):
        return False
    volume = files.layers.upload(seed, name)
    disks = tuple(dataclasses.replace(d, path=volume) if d.label == SEED_LABEL else d for d in spec.disks)
    project.spec = spec.replace(disks=disks).to_dict()
    files.write(project)
    return True
