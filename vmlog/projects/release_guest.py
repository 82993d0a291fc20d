"""How a project's releases reach its guest: which guest it is, shares added to the running VM, the agent mounting them.

A guest with shared folders sees the host's mount of a release under a ``rel-*`` tag; one with a
guest agent vmlog reaches (the standard agent of a real guest, or the test appliance's serial one)
mounts it at once, checked in the guest's ``/proc/mounts``, and a real guest keeps it in its
``/etc/fstab`` for later boots; others get the command to run. It is unmounted in the guest before
its share is detached, since a guest left with a mount of a vanished share gets "Transport endpoint
is not connected".
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hypervisors.base import Capability, Hypervisor
from hypervisors.errors import HypervisorError, ReportableError
from hypervisors.spec import SharedFolder
from vmlog.context import project_setup
from vmlog.context.guest import (
    NO_AGENT,
    STANDARD_AGENT,
    agent_unknown,
    answers_standard_agent,
    guest_agent_kind,
    open_guest,
)
from vmlog.errors import Busy, NotFound, VmlogError
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
    return {"context": str(meta.get("context") or "none"), "agent": kind is not None, "agent_kind": kind,
            "agent_unknown": agent_unknown(meta)}


def find_guest_agent(files: ProjectFiles, project: Project, *, timeout: float, again: bool = False) -> str | None:
    """The agent the project's guest runs: as recorded, else asked of the running VM (and recorded).

    A project on a base vmlog has no facts about (imported or unarchived from a local image) learns
    here that its guest runs the platform's standard agent. A guest where none answered is recorded
    as having none, and not waited for again unless ``again`` (the guest may have got one since).
    """
    facts = guest_facts(files, project)
    if facts["agent_kind"] is not None or not (facts["agent_unknown"] or again):
        return facts["agent_kind"]
    try:
        with open_backend(project) as backend:
            answered = answers_standard_agent(backend, project.vm_name, timeout=timeout)
    except ReportableError:  # the backend cannot be reached: nothing is learnt, nothing recorded
        return None
    try:
        project_setup.record_guest_agent(files.root, project.base, STANDARD_AGENT if answered else NO_AGENT)
    except (OSError, VmlogError):  # the agent is used now all the same; a later run asks again
        pass
    return STANDARD_AGENT if answered else None


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


def as_root(command: str, runs_as_root: bool) -> str:
    """``command`` as root: as it is where the agent runs commands as root, else through ``sudo -n`` (no prompt)."""
    return command if runs_as_root else f"sudo -n sh -c {shlex.quote(command)}"


def guest_run(files: ProjectFiles, project: Project, commands: list[str], *, timeout: float) -> None:
    """Run ``commands`` as root in the guest through its agent, waiting up to ``timeout`` for the agent.

    Guest Additions and VMware Tools run commands as the login user: there each goes through ``sudo -n``.
    """
    kind = guest_facts(files, project)["agent_kind"]
    if kind is None:
        raise NotFound(f"project {project.name!r} has no guest agent", fix="mount it in the guest by hand")
    socket = project.spec.get("channel_socket")
    with open_backend(project) as backend:
        with open_guest(backend, project.vm_name, kind, Path(socket) if socket else None) as guest:
            guest.wait_ready(timeout)
            for command in commands:
                guest.check_shell(as_root(command, guest.runs_as_root), timeout=120)


def mounted_in_guest_check(item: ProjectRelease) -> str:
    """A command that succeeds only if the guest's kernel has ``item``'s share mounted at its path."""
    return f"grep -qF {shlex.quote(f'{item.tag} {item.guest_path} virtiofs ')} /proc/mounts"


def fstab_entry(item: ProjectRelease) -> str:
    """The guest's ``/etc/fstab`` line that mounts the share at every boot; ``nofail``: a boot without it goes on."""
    return f"{item.tag} {item.guest_path} virtiofs ro,nofail 0 0"


def fstab_add_command(item: ProjectRelease) -> str:
    """Add :func:`fstab_entry` to the guest's fstab once (the guest then mounts it at boot on its own)."""
    prefix = shlex.quote(f"{item.tag} {item.guest_path} ")
    return f"grep -qF {prefix} /etc/fstab 2>/dev/null || printf '%s\\n' {shlex.quote(fstab_entry(item))} >> /etc/fstab"


def fstab_remove_command(item: ProjectRelease) -> str:
    """Remove ``item``'s line from the guest's fstab (the file is rewritten in place, keeping its owner and mode)."""
    prefix = shlex.quote(f"{item.tag} {item.guest_path} ")
    return (
        f"if grep -qF {prefix} /etc/fstab 2>/dev/null; then {{ grep -vF {prefix} /etc/fstab || true; }}"
        " > /etc/fstab.vmlog && cat /etc/fstab.vmlog > /etc/fstab && rm -f /etc/fstab.vmlog; fi"
    )


def guest_umount_command(item: ProjectRelease) -> str:
    """Unmount ``item`` in the guest if it is mounted (``umount`` fails, and says why, while it is busy)."""
    path = shlex.quote(item.guest_path)
    return f"! mountpoint -q {path} || umount {path}"


def guest_mount_commands(items: list[ProjectRelease]) -> list[str]:
    """Shell commands that mount ``items``' shares in a Linux guest (a mounted one is left alone)."""
    return [
        f"mountpoint -q {shlex.quote(item.guest_path)} || ({mount_command_for(item.name, item.guest_path)})"
        for item in items
        if item.guest == "share"
    ]


def mount_in_guest(files: ProjectFiles, project: Project, item: ProjectRelease, *, timeout: float) -> str | None:
    """Mount ``item``'s share in the running guest through its agent and check the guest's mount table.

    None once the guest's kernel shows the share mounted, else why not. A real guest (the platform's
    agent) also gets the share in its ``/etc/fstab`` (``nofail``), so it mounts it at every boot on its
    own; cloud-init's ``mounts`` module would do the same, but only for a new instance-id.
    """
    commands = guest_mount_commands([item])
    if guest_facts(files, project)["agent_kind"] == STANDARD_AGENT:
        commands.append(fstab_add_command(item))
    try:
        guest_run(files, project, commands, timeout=timeout)
    except ReportableError as exc:  # the agent did not answer, or mount failed in the guest
        return exc.message
    try:
        guest_run(files, project, [mounted_in_guest_check(item)], timeout=timeout)
    except ReportableError:
        return f"the guest's /proc/mounts does not show {item.tag} mounted at {item.guest_path}"
    return None


def umount_in_guest(files: ProjectFiles, project: Project, item: ProjectRelease) -> None:
    """Unmount ``item`` in the running guest (and take it out of its fstab) before its share is detached.

    A detached share under a guest that still has it mounted leaves the guest with "Transport
    endpoint is not connected"; so a failed unmount (busy, or an agent that does not answer) is
    ``Busy``, and nothing is detached.
    """
    commands = [guest_umount_command(item)]
    if guest_facts(files, project)["agent_kind"] == STANDARD_AGENT:
        commands.append(fstab_remove_command(item))
    try:
        guest_run(files, project, commands, timeout=30)
    except ReportableError as exc:
        raise Busy(
            f"release {item.name} could not be unmounted in the guest at {item.guest_path}: {exc.message};"
            " its share stays in the VM",
            fix=f"close what uses {item.guest_path} in the guest (`fuser -vm {item.guest_path}` lists it), then"
            f" `vml release umount {item.name} --project {project.name}` again; or `vml down {project.name}` first",
        ) from exc
