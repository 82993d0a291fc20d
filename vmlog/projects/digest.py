"""The ``since`` digest of a state: what its disks show above the base, the same on every backend.

An incremental bundle names the state it builds on by this digest; the recipient computes it from
its own copy, so the bundle applies only onto identical content (see :mod:`vmlog.bundles.content_digest`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vmlog.bundles.content_digest import content_digest
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles


def layers_digest(files: ProjectFiles, project: Project, layers: dict[str, Path]) -> str:
    """The digest of a state whose disks show what these qcow2 chain tops show (any backend)."""
    sha = hashlib.sha256()
    for label in sorted(layers):
        root, root_format = files.root_path(project, label)
        image_sha = project.roots[label].image_sha256 or ""
        digest = content_digest(layers[label], "qcow2", root, root_format, image_sha)
        sha.update(f"{label} {digest}\n".encode())
    return "state-sha256:" + sha.hexdigest()


def state_digest(files: ProjectFiles, project: Project, state: State) -> str:
    """The digest of a state on vmlog's own overlay chain, label by label."""
    return layers_digest(files, project, {label: files.layers.path(layer) for label, layer in state.layers.items()})
