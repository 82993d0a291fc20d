"""How a project's releases reach its guest: which guest it is, shares added to the running VM, the agent mounting them.

A guest with shared folders sees the host's mount of a release under a ``rel-*`` tag; one with a
guest agent vmlog reaches (the standard agent of a real guest, or the test appliance's serial one)
mounts it at once, others at boot (the command is shown).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hypervisors.base import Capability, Hypervisor
from hypervisors.errors import HypervisorError
from hypervisors.spec import SharedFolder
from vmlog.context import project_setup
from vmlog.context.guest import guest_agent_kind, open_guest
from vmlog.errors import NotFound, VmlogError
from vmlog.paths import VmlogHome
from vmlog.projects.backends import open_backend
from vmlog.projects.model import Project
from vmlog.projects.release_records import ProjectRelease
from vmlog.projects.store import ProjectFiles
from vmlog.releases.cvmfs_source import CvmfsSource
from vmlog.releases.guest_share import mount_command_for
from vmlog.releases.model import ReleaseSource
from vmlog.releases.sources import load_sources


def guest_facts(files: ProjectFiles, project: Project) -> dict[str, Any]:
    """The context kind of the project's appliance and which guest agent its guest runs (None: no agent)."""
    try:
        meta = project_setup.read_setup_meta(files.root) or {}
    except VmlogError:
        meta = {}
    if "agent" not in meta and "guest_agent" not in meta:
        meta = {**project_setup.meta_without_setup(project.base), **meta}
    kind = guest_agent_kind(meta)
    return {"context": str(meta.get("context") or "none"), "agent": kind is not None, "agent_kind": kind}


def guest_kind_for(files: ProjectFiles, project: Project, source: ReleaseSource) -> str:
    """``cvmfs`` for a CernVM guest and a CernVM-FS source (native client), else ``share``."""
    if isinstance(source, CvmfsSource) and guest_facts(files, project)["context"] == "cernvm":
        return "cvmfs"
    return "share"


def configured_source(item: ProjectRelease, where: VmlogHome | None = None) -> ReleaseSource | None:
    """The user's configured source that serves ``item`` (same kind, URL and key), or None.

    Releases are only mounted from sources the user added: a state from a bundle cannot make vmlog
    trust a key it carries.
    """
    url = str(item.source.get("url", "")).rstrip("/")
    for source in load_sources(where):
        if source.kind != item.source.get("kind") or source.url != url:
            continue
        if isinstance(source, CvmfsSource):
            if source.master_key_pem.strip() != str(item.source.get("master_key_pem", "")).strip():
                continue
        return source
    return None


def missing_source_warning(item: ProjectRelease, project: str) -> str:
    return (
        f"release {item.describe()} from {item.source.get('url')} is needed but that source is not"
        f" configured here; add it (`vml release source add {item.source.get('url')}`), then"
        f" `vml release mount {item.release.path} --project {project} --revision {item.release.revision}`"
    )


def hotplug_share(backend: Hypervisor, vm_name: str, folder: SharedFolder, *, attach: bool) -> str | None:
    """Add (or remove) a share on the running VM; None if done, else why not (the hypervisor's words).

    A libvirt VM takes a virtiofs share only if it was booted with shared memory (it already had a
    share); the caller then offers the next boot or a restart.
    """
    if not backend.can(Capability.SHARED_FOLDER_HOTPLUG):
        return f"the {backend.name} backend cannot change the shared folders of a running VM"
    try:
        if attach:
            backend.attach_shared_folder(vm_name, folder)
        else:
            backend.detach_shared_folder(vm_name, folder)
    except HypervisorError as exc:  # Unsupported, OperationFailed (libvirt's words), or a VM that stopped
        return exc.message
    return None


def guest_run(files: ProjectFiles, project: Project, commands: list[str], *, timeout: float) -> None:
    """Run ``commands`` as root in the guest through its agent, waiting up to ``timeout`` for the agent."""
    kind = guest_facts(files, project)["agent_kind"]
    if kind is None:
        raise NotFound(f"project {project.name!r} has no guest agent", fix="mount it in the guest by hand")
    socket = project.spec.get("channel_socket")
    with open_backend(project) as backend:
        with open_guest(backend, project.vm_name, kind, Path(socket) if socket else None) as guest:
            guest.wait_ready(timeout)
            for command in commands:
                guest.check_shell(command, timeout=120)


def guest_mount_commands(items: list[ProjectRelease]) -> list[str]:
    """Shell commands that mount ``items``' shares in a Linux guest (a mounted one is left alone)."""
    return [
        f"mountpoint -q {shlex.quote(item.guest_path)} || ({mount_command_for(item.name, item.guest_path)})"
        for item in items
        if item.guest == "share"
    ]
