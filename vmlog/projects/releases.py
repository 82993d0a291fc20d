"""The releases a project has mounted: host mounts shared into its VM, or a CernVM guest's own client.

A project keeps its mounted releases in ``releases.json`` next to ``project.json``, each pinned to
an exact revision. ``vml release mount --project`` adds one; saving a state copies the list into
the state; restoring a state mounts the same revisions again and shares them into the VM.

How a release reaches the guest depends on the guest:

* a guest with shared folders (virtiofs with libvirt) sees the host's FUSE mount of the release
  under a ``rel-*`` tag; a guest with an agent vmlog reaches (a real guest's standard agent, the
  test appliance's serial one) mounts it at its mount path at once and after every boot, others
  get the command to run;
* a CernVM guest (catalog context ``cernvm``) with a CernVM-FS source runs its own client: the
  client configuration, pinned to the revision's root catalog, goes into the contextualisation
  seed and takes effect at the next boot.

QEMU 7.2 cannot save the memory of a VM with virtiofs shares, so a suspend or a memory state of a
libvirt project with shared releases is refused with the fix (unmount the releases, or shut down).
Adding a virtiofs share to a running libvirt VM works only if the VM was booted with shared memory
(i.e. already had a shared folder); otherwise the share is added at the next boot, or at once with
``restart``.

The record lives in :mod:`vmlog.projects.release_records`, the guest side in
:mod:`vmlog.projects.release_guest`, CernVM's client in :mod:`vmlog.projects.release_cernvm`; this
module keeps the host mounts in step with them and is what callers import.
"""

from __future__ import annotations

from pathlib import Path

from hypervisors.spec import VMSpec
from vmlog.errors import VmlogError
from vmlog.paths import VmlogHome
from vmlog.projects.model import Project, State
from vmlog.projects.release_cernvm import cernvm_context, cernvm_release_files, write_cernvm_seed
from vmlog.projects.release_guest import (
    configured_source,
    find_guest_agent,
    guest_facts,
    guest_kind_for,
    guest_mount_commands,
    guest_run,
    hotplug_share,
    missing_source_warning,
    mount_in_guest,
    umount_in_guest,
)
from vmlog.projects.release_records import (
    GUEST,
    RELEASES_FILE,
    SHARE_PREFIX,
    ProjectRelease,
    ReleaseOutcome,
    default_guest_path,
    project_releases,
    public_source,
    record_in_state,
    refuse_memory_save,
    releases_of_records,
    shares_memory_block,
    state_releases,
    with_release_shares,
    write_project_releases,
)
from vmlog.projects.store import ProjectFiles
from vmlog.releases import mounts

__all__ = [
    "GUEST",
    "RELEASES_FILE",
    "SHARE_PREFIX",
    "ProjectRelease",
    "ReleaseOutcome",
    "after_boot",
    "apply_state",
    "before_boot",
    "cernvm_context",
    "cernvm_release_files",
    "configured_source",
    "default_guest_path",
    "ensure_host_mounts",
    "find_guest_agent",
    "guest_facts",
    "guest_kind_for",
    "guest_mount_commands",
    "guest_run",
    "host_mountpoints",
    "hotplug_share",
    "missing_source_warning",
    "mount_in_guest",
    "project_releases",
    "public_source",
    "record_in_state",
    "refuse_memory_save",
    "shares_memory_block",
    "state_releases",
    "umount_in_guest",
    "unconfigured_releases",
    "with_release_shares",
    "write_cernvm_seed",
    "write_project_releases",
]

AGENT_BOOT_TIMEOUT = 300.0


def host_mountpoints(project: str, where: VmlogHome | None = None) -> dict[str, Path]:
    return {h.name: h.mountpoint for h in mounts.running_mounts(where, project=project)}


def ensure_host_mounts(
    files: ProjectFiles, project: Project, where: VmlogHome | None = None
) -> tuple[list[ProjectRelease], list[str]]:
    """Mount on the host the project's shared releases that are not mounted (e.g. after a host reboot).

    Returns the releases that are mounted and warnings for those that could not be.
    """
    mounted, warnings = [], []
    running = host_mountpoints(project.name, where)
    for item in project_releases(files):
        if item.guest != "share":
            mounted.append(item)
            continue
        if item.name in running:
            mounted.append(item)
            continue
        source = configured_source(item, where)
        if source is None:
            warnings.append(missing_source_warning(item, project.name))
            continue
        try:
            mounts.remount_pinned([{**item.to_dict(), "source_object": source}], where, project=project.name)
        except VmlogError as exc:
            warnings.append(f"release {item.describe()} cannot be mounted: {exc.message}")
            continue
        mounted.append(item)
    return mounted, warnings


def unconfigured_releases(records: object, where: VmlogHome | None = None) -> list[ProjectRelease]:
    """The releases among a state's ``release_mounts`` records whose source is not configured here.

    They cannot be re-mounted here until the user adds their source; an import says which they are
    (records that cannot be read are skipped, as :func:`state_releases` does).
    """
    return [item for item in releases_of_records(records) if configured_source(item, where) is None]


def _mkdir_share_dirs(project: Project) -> None:
    """An unmounted release's share still needs its directory, or the VM cannot start at all."""
    for folder in VMSpec.from_dict(project.spec).shared_folders:
        if folder.tag.startswith(SHARE_PREFIX) and not Path(folder.host_path).exists():
            Path(folder.host_path).mkdir(parents=True, exist_ok=True)


def before_boot(files: ProjectFiles, project: Project, where: VmlogHome | None = None) -> list[str]:
    """Before a cold boot: the project's shared releases are mounted on the host (warnings otherwise)."""
    if not (files.root / RELEASES_FILE).is_file():
        return []
    _mounted, warnings = ensure_host_mounts(files, project, where)
    _mkdir_share_dirs(project)
    return warnings


def after_boot(files: ProjectFiles, project: Project) -> list[str]:
    """After a cold boot: mount the shared releases in the guest (through the agent, if it has one).

    A guest whose agent is not known yet (a project imported or unarchived on a base vmlog has no
    facts about) is asked whether the standard one answers (:func:`find_guest_agent`). Each mount is
    checked in the guest's mount table, and a real guest gets it in its fstab, as
    ``vml release mount`` on a running guest does (:func:`mount_in_guest`).
    """
    items = [item for item in project_releases(files) if item.guest == "share"]
    if not items:
        return []
    if find_guest_agent(files, project, timeout=AGENT_BOOT_TIMEOUT) is None:
        return ["mount the releases in the guest: " + "; ".join(guest_mount_commands(items))]
    warnings = []
    for item in items:
        why = mount_in_guest(files, project, item, timeout=AGENT_BOOT_TIMEOUT)
        if why is not None:  # the agent did not answer, or a mount failed in the guest
            warnings.append(f"release {item.name} could not be mounted in the guest: {why}")
    return warnings


def apply_state(
    files: ProjectFiles, target: State, *, where: VmlogHome | None = None
) -> ReleaseOutcome:
    """Make the project's releases those ``target`` recorded, at the same revisions (the VM is stopped).

    Releases whose source is not configured here are left out with a warning saying what is needed.
    """
    project = files.load()
    outcome = ReleaseOutcome()
    wanted = state_releases(target)
    current = project_releases(files)
    if not wanted and not current:
        return outcome
    running = host_mountpoints(project.name, where)
    for item in current:
        same = any(w.name == item.name and w.release.pin == item.release.pin for w in wanted)
        if item.guest == "share" and item.name in running and not same:
            mounts.umount(item.name, where, project=project.name, lazy=True)
            outcome.messages.append(f"unmounted {item.describe()}")
    for item in wanted:
        source = configured_source(item, where)
        if source is None:
            outcome.warnings.append(missing_source_warning(item, project.name))
            continue
        if item.guest == "share":
            try:
                mounts.remount_pinned([{**item.to_dict(), "source_object": source}], where, project=project.name)
            except VmlogError as exc:
                outcome.warnings.append(f"release {item.describe()} cannot be mounted: {exc.message}")
                continue
        outcome.releases.append(item)
        outcome.messages.append(f"mounted {item.describe()}")
    write_project_releases(files, outcome.releases)
    project.spec = with_release_shares(project.spec, outcome.releases, host_mountpoints(project.name, where))
    files.write(project)
    if any(item.guest == "cvmfs" for item in [*current, *wanted]):
        write_cernvm_seed(files, project, outcome.releases)
        outcome.guest = "seed"
    return outcome
