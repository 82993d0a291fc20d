"""How a mounted release reaches a project's VM: a read-only shared folder, or a native CernVM-FS client.

Hypervisors with shared folders (virtiofs with libvirt, shared folders with VirtualBox and VMware)
show the host's FUSE mount to the guest; the guest mounts the folder's tag at the release's
mount path. A CernVM guest runs the CernVM-FS client itself: it gets a client configuration
pinned to the same root catalog (``CVMFS_ROOT_HASH``), so both ways show the same revision.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from hypervisors.spec import SharedFolder
from vmlog.releases.model import Release
from vmlog.releases.mounts import MountHandle

if TYPE_CHECKING:  # the CernVM-FS reader (catalogs, signatures) is for the commands that read a repository
    from vmlog.releases.cvmfs_source import CvmfsSource

DEFAULT_GUEST_ROOT = "/cvmfs-releases"


def share_tag(name: str) -> str:
    """A shared-folder tag for a release (virtiofs tags are at most 36 bytes)."""
    return ("rel-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name))[:36]


def shared_folder(handle: MountHandle) -> SharedFolder:
    """The VM spec entry that shows ``handle``'s mount to the guest, read-only."""
    return SharedFolder(tag=share_tag(handle.name), host_path=handle.mountpoint, readonly=True)


def guest_mount_command(handle: MountHandle, mount_path: str | None = None, *, kind: str = "virtiofs") -> str:
    """The shell command a Linux guest runs to mount the shared release (``kind``: virtiofs, 9p, vboxsf)."""
    return mount_command_for(handle.name, mount_path, kind=kind)


def mount_command_for(name: str, mount_path: str | None = None, *, kind: str = "virtiofs") -> str:
    """:func:`guest_mount_command` for a release known by name (e.g. from a project's record)."""
    target = mount_path or f"{DEFAULT_GUEST_ROOT}/{name}"
    tag = shlex.quote(share_tag(name))
    options = {
        "virtiofs": "-t virtiofs -o ro",
        "9p": "-t 9p -o ro,trans=virtio,version=9p2000.L",
        "vboxsf": "-t vboxsf -o ro",
    }
    return f"mkdir -p {shlex.quote(target)} && mount {options[kind]} {tag} {shlex.quote(target)}"


def cvmfs_client_files(source: CvmfsSource, release: Release, *, proxy: str | None = None) -> dict[str, str]:
    """Files that configure a guest's CernVM-FS client for ``source``, pinned to ``release``'s revision.

    Written through contextualisation (cloud-init ``write_files``) or the guest channel; the guest
    then sees the release at ``/cvmfs/<repository>/<release.path>``.
    """
    repo = source.repository
    server_url = source.url[: -len(repo)] + "@fqrn@"
    key_path = f"/etc/cvmfs/keys/vmlog/{repo}.pub"
    return {
        "/etc/cvmfs/default.d/60-vmlog.conf": f"CVMFS_REPOSITORIES={repo}\nCVMFS_HTTP_PROXY={proxy or 'DIRECT'}\n",
        f"/etc/cvmfs/config.d/{repo}.local": (
            f"CVMFS_SERVER_URL={server_url}\n"
            f"CVMFS_PUBLIC_KEY={key_path}\n"
            f"# revision {release.revision} ({release.tag or 'untagged'}), pinned by vmlog\n"
            f"CVMFS_ROOT_HASH={release.pin}\n"
        ),
        key_path: source.master_key_pem,
    }
