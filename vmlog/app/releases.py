"""Releases: mount one for a project and show it to its VM, take it out, list them; sources and mounts on the host."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors.base import VMState
from hypervisors.spec import SharedFolder
from vmlog.app.projects import load, resolve_project
from vmlog.app.running import start_vm
from vmlog.app.session import session
from vmlog.errors import AlreadyExists, NotFound
from vmlog.paths import VmlogHome
from vmlog.projects.backends import open_backend, vm_state
from vmlog.projects.model import Project
from vmlog.projects.releases import (
    ProjectRelease,
    ReleaseOutcome,
    find_guest_agent,
    guest_facts,
    guest_kind_for,
    guest_mount_commands,
    host_mountpoints,
    hotplug_share,
    mount_in_guest,
    project_releases,
    public_source,
    umount_in_guest,
    with_release_shares,
    write_cernvm_seed,
    write_project_releases,
)
from vmlog.projects.store import ProjectFiles
from vmlog.releases import mounts
from vmlog.releases.model import Release
from vmlog.releases.mounts import MountHandle
from vmlog.releases.object_cache import DEFAULT_LIMIT as DEFAULT_CACHE_LIMIT
from vmlog.releases.sources import add_source, get_source, load_sources, make_source, remove_source
from vmlog.workspace import Workspace, workspace

GUEST_MOUNT_TIMEOUT = 60.0  # the agent of a running guest answers at once; after --restart it booted already
AGENT_PROBE_TIMEOUT = 10.0  # a running guest not known to have an agent: is the standard one there after all?


def _agent_of(files: ProjectFiles, project: Project, *, timeout: float, again: bool = False) -> str | None:
    """The guest's agent as the project records it, else asked of the running VM (:func:`find_guest_agent`)."""
    facts = guest_facts(files, project)
    if facts["agent"]:
        return facts["agent_kind"]
    return find_guest_agent(files, project, timeout=timeout, again=again)


def _share_into_running_vm(
    files: ProjectFiles, project: Project, item: ProjectRelease, *, restart: bool, outcome: ReleaseOutcome
) -> None:
    mountpoint = host_mountpoints(project.name)[item.name]
    with open_backend(project) as backend:
        state = vm_state(backend, project.vm_name)
        if state not in (VMState.RUNNING, VMState.PAUSED):
            outcome.guest = "next boot"
            outcome.messages.append(f"the VM is {state.value}: the release is shared into it when it boots")
            return
        why = hotplug_share(backend, project.vm_name, SharedFolder(item.tag, mountpoint, True), attach=True)
        if why is not None and not restart:
            outcome.guest = "next boot"
            outcome.warnings.append(
                f"the release cannot be added to the running VM ({why}); it is shared at the next boot"
                f" (`vml down {project.name}` then `vml up {project.name}`), or now with --restart"
            )
            return
        if why is not None:
            outcome.messages.append(f"hot-plug refused ({why}); restarting the VM to share the release")
            backend.shutdown(project.vm_name)
            outcome.warnings += start_vm(backend, files, files.load()) or []
    probe = GUEST_MOUNT_TIMEOUT if restart else AGENT_PROBE_TIMEOUT
    if _agent_of(files, project, timeout=probe, again=True) is None:
        outcome.guest = "attached"
        outcome.warnings.append("the share is in the VM; mount it in the guest: " + guest_mount_commands([item])[0])
        return
    not_mounted = mount_in_guest(files, project, item, timeout=GUEST_MOUNT_TIMEOUT)
    if not_mounted is not None:
        outcome.guest = "attached"
        outcome.warnings.append(
            f"the share is in the VM but it is not mounted in the guest ({not_mounted}); mount it there: "
            + guest_mount_commands([item])[0]
        )
        return
    outcome.guest = "mounted"
    outcome.messages.append(f"mounted in the guest at {item.guest_path} (checked in its /proc/mounts)")


def mount_in_project(
    project_name: str | None,
    release_name: str,
    *,
    source: str | None = None,
    revision: int | None = None,
    guest_path: str | None = None,
    restart: bool = False,
    ctx: Workspace | None = None,
) -> ReleaseOutcome:
    """Mount a release for a project and show it to the project's VM (see the module docstring)."""
    ctx = workspace(ctx)
    name = resolve_project(project_name, ctx)
    chosen = get_source(source, ctx.home)
    with session(ctx, name, "release mount", release=release_name, revision=revision) as op:
        files = ctx.projects.get(name)
        project = files.load()
        items = project_releases(files)
        guest = guest_kind_for(files, project, chosen)
        outcome = ReleaseOutcome()
        if guest == "cvmfs":
            release = chosen.resolve(release_name, mounts.default_cache_dir(ctx.home), revision=revision)
            item = ProjectRelease(release.name, release, public_source(chosen.to_config()), "cvmfs", guest_path or "")
        else:
            handle = mounts.mount_release(chosen, release_name, revision=revision, where=ctx.home, project=name)
            item = ProjectRelease(handle.name, handle.release, public_source(handle.source), "share", guest_path or "")
        if any(i.name == item.name for i in items):
            if guest == "share":
                mounts.umount(item.name, ctx.home, project=name)
            raise AlreadyExists(
                f"project {name!r} already has release {item.name} mounted",
                fix=f"vml release umount {item.name} --project {name}",
            )
        try:
            new_items = [*items, item]
            if guest == "cvmfs":
                write_cernvm_seed(files, project, new_items)
                outcome.guest = "seed"
                outcome.messages.append(
                    f"the CernVM-FS client configuration pinned to revision {item.release.revision} is in the"
                    f" project's seed; the guest sees {item.guest_path} after its next boot"
                )
            write_project_releases(files, new_items)
            project.spec = with_release_shares(project.spec, new_items, host_mountpoints(name, ctx.home))
            files.write(project)
        except BaseException:
            if guest == "share":
                mounts.umount(item.name, ctx.home, project=name, lazy=True)
            raise
        outcome.releases.append(item)
        if guest == "share":
            _share_into_running_vm(files, files.load(), item, restart=restart, outcome=outcome)
        op.message = f"{item.describe()} at {item.guest_path} ({outcome.guest or 'host'})"
        return outcome


def umount_in_project(project_name: str | None, release_name: str, *, ctx: Workspace | None = None) -> ReleaseOutcome:
    """Take a release out of the project's VM and unmount it on the host."""
    ctx = workspace(ctx)
    name = resolve_project(project_name, ctx)
    with session(ctx, name, "release umount", release=release_name) as op:
        files = ctx.projects.get(name)
        project = files.load()
        items = project_releases(files)
        item = next((i for i in items if release_name in (i.name, i.release.path)), None)
        if item is None:
            raise NotFound(
                f"project {name!r} has no release {release_name} mounted",
                fix=f"see its releases with: vml release list --running --project {name}",
            )
        outcome = ReleaseOutcome(releases=[item])
        running_vm = False
        if item.guest == "share":
            with open_backend(project) as backend:
                running_vm = vm_state(backend, project.vm_name) in (VMState.RUNNING, VMState.PAUSED)
                if running_vm:
                    if _agent_of(files, project, timeout=AGENT_PROBE_TIMEOUT) is not None:
                        umount_in_guest(files, project, item)  # Busy (nothing detached) if the guest holds it
                    folder = SharedFolder(item.tag, host_mountpoints(name, ctx.home).get(item.name, Path("/")))
                    why = hotplug_share(backend, project.vm_name, folder, attach=False)
                    if why is not None:
                        outcome.warnings.append(f"the share stays in the running VM until it stops ({why})")
            if item.name in host_mountpoints(name, ctx.home):
                mounts.umount(item.name, ctx.home, project=name, lazy=running_vm)
        remaining = [i for i in items if i is not item]
        write_project_releases(files, remaining)
        project.spec = with_release_shares(project.spec, remaining, host_mountpoints(name, ctx.home))
        files.write(project)
        if item.guest == "cvmfs":
            write_cernvm_seed(files, project, remaining)
            outcome.messages.append("the CernVM-FS configuration leaves the seed; it takes effect at the next boot")
        outcome.guest = "unmounted" if running_vm else ""
        op.message = f"{item.describe()}"
        return outcome


@dataclass(frozen=True)
class MountedProjectRelease:
    """A release of a project, and where it is mounted on the host now (None: not mounted)."""

    project: str
    item: ProjectRelease
    host_mountpoint: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.item.to_dict(),
            "project": self.project,
            "host_mountpoint": str(self.host_mountpoint) if self.host_mountpoint else None,
        }


def list_project_releases(project_name: str | None, *, ctx: Workspace | None = None) -> list[MountedProjectRelease]:
    """The project's releases with whether each is mounted on the host now."""
    ctx = workspace(ctx)
    files, project = load(project_name, ctx)
    running = host_mountpoints(project.name, ctx.home)
    return [MountedProjectRelease(project.name, item, running.get(item.name)) for item in project_releases(files)]


# -- releases on the host: sources, what they publish, mounts -------------------------------------


def _where(ctx: Workspace | None) -> VmlogHome | None:
    """The home of ``ctx``; None lets the releases code use the default home without opening a logbook."""
    return ctx.home if ctx is not None else None


@dataclass(frozen=True)
class ReleaseSourceInfo:
    """A configured release source as the user sees it (its signing key left out)."""

    name: str
    kind: str
    url: str
    pattern: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.config)


def list_release_sources(*, ctx: Workspace | None = None) -> list[ReleaseSourceInfo]:
    found = []
    for source in load_sources(_where(ctx)):
        config = source.to_config()
        config.pop("master_key_pem", None)
        found.append(ReleaseSourceInfo(source.name, str(config.get("kind")), source.url,
                                       str(config.get("pattern")), config))  # fmt: skip
    return found


def add_release_source(
    url: str,
    *,
    kind: str = "auto",
    key_pem: str | None = None,
    name: str | None = None,
    pattern: str = "{release}",
    proxy: str | None = None,
    check: bool = True,
    say: Callable[[str], None] = lambda _text: None,
    ctx: Workspace | None = None,
) -> ReleaseSourceInfo:
    """Record a release source, after verifying it (signatures or catalogue digest) by listing it once."""
    where = _where(ctx)
    source = make_source(url, kind=kind, key_pem=key_pem, name=name, pattern=pattern, proxy=proxy)
    if check:
        found = source.list_releases(mounts.default_cache_dir(where))
        say(f"{source.name}: verified, {len(found)} release(s)")
    add_source(source, where)
    return next(info for info in list_release_sources(ctx=ctx) if info.name == source.name)


def remove_release_source(name: str, *, ctx: Workspace | None = None) -> None:
    """Forget a release source (mounted releases stay mounted)."""
    remove_source(name, _where(ctx))


@dataclass(frozen=True)
class AvailableRelease:
    """A release a source publishes."""

    source: str
    release: Release

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.release.to_dict()}


@dataclass(frozen=True)
class AvailableReleases:
    releases: list[AvailableRelease]
    problems: list[str] = field(default_factory=list)  # sources that could not be listed (keep_going only)


def available_releases(
    source: str | None = None, *, keep_going: bool = False, ctx: Workspace | None = None
) -> AvailableReleases:
    """What source ``source`` (every source if None) publishes; ``keep_going`` notes a failing source and goes on."""
    where = _where(ctx)
    chosen = [get_source(source, where)] if source else load_sources(where)
    releases, problems = [], []
    for item in chosen:
        try:
            releases += [AvailableRelease(item.name, r) for r in item.list_releases(mounts.default_cache_dir(where))]
        except Exception as exc:  # noqa: BLE001 - with keep_going, one unreachable source does not hide the others
            if not keep_going:
                raise
            problems.append(f"{item.name}: {getattr(exc, 'message', None) or exc}")
    return AvailableReleases(releases, problems)


def host_mounts(*, ctx: Workspace | None = None) -> list[MountHandle]:
    """The releases mounted on this host now (for projects or not)."""
    return mounts.running_mounts(_where(ctx))


def mount_on_host(
    name: str,
    *,
    source: str | None = None,
    at: Path | None = None,
    cache_dir: Path | None = None,
    cache_limit: int = DEFAULT_CACHE_LIMIT,
    log_file: Path | None = None,
    revision: int | None = None,
    ctx: Workspace | None = None,
) -> MountHandle:
    """Mount a release read-only on the host; files are fetched, verified and cached on first access."""
    where = _where(ctx)
    return mounts.mount_release(get_source(source, where), name, at=at, cache_dir=cache_dir, cache_limit=cache_limit,
                                log_file=log_file, revision=revision, where=where)  # fmt: skip


def umount_on_host(name: str, *, ctx: Workspace | None = None) -> MountHandle:
    return mounts.umount(name, _where(ctx))


@dataclass(frozen=True)
class MountDefaults:
    """Where a release mount goes unless the user says otherwise."""

    mountpoint: Path
    cache_dir: Path
    cache_limit: int
    log_file: Path


def mount_defaults(name: str, *, ctx: Workspace | None = None) -> MountDefaults:
    where = _where(ctx)
    return MountDefaults(mounts.default_mountpoint(name, where), mounts.default_cache_dir(where), DEFAULT_CACHE_LIMIT,
                         mounts.log_path(name, where))  # fmt: skip


def mount_log(name: str, *, project: str | None = None, ctx: Workspace | None = None) -> Path:
    """The log file of release mount ``name`` (its own if it was customised; it may not exist yet)."""
    where = _where(ctx)
    running = next((h.log_file for h in mounts.running_mounts(where, project=project) if h.name == name), None)
    return running or mounts.log_path(name, where, project=project)
