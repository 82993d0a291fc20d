"""Release-mount manager: list software releases of a source and mount them as a lazy read-only filesystem.

Sources are CernVM-FS repositories over HTTP (signed manifest, SQLite catalogs, content-addressed
objects) and plain HTTP release trees with a catalogue file. A mounted release is pinned to an
exact revision, so a saved state can record it and mount the same content again.

The names are imported on first use (:mod:`vmlog.lazy_exports`): a project's release records need
the model, not the CernVM-FS reader and its signature checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmlog.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from vmlog.releases.cvmfs_source import CvmfsSource
    from vmlog.releases.model import Entry, Release, ReleaseSource, ReleaseTree
    from vmlog.releases.mounts import MountHandle, mount_release, remount_pinned, running_mounts, umount
    from vmlog.releases.tree_source import HttpTreeSource

__all__ = [
    "CvmfsSource",
    "Entry",
    "HttpTreeSource",
    "MountHandle",
    "Release",
    "ReleaseSource",
    "ReleaseTree",
    "mount_release",
    "remount_pinned",
    "running_mounts",
    "umount",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "vmlog.releases.cvmfs_source": ("CvmfsSource",),
    "vmlog.releases.model": ("Entry", "Release", "ReleaseSource", "ReleaseTree"),
    "vmlog.releases.mounts": ("MountHandle", "mount_release", "remount_pinned", "running_mounts", "umount"),
    "vmlog.releases.tree_source": ("HttpTreeSource",),
})  # fmt: skip
