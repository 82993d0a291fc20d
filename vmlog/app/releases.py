"""Releases in projects: mount a release for a project and show it to its VM, take it out, list them."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from hypervisors.base import VMState
from hypervisors.spec import SharedFolder
from vmlog.app.projects import load, resolve_project
from vmlog.app.running import start_vm
from vmlog.app.session import session
from vmlog.errors import AlreadyExists, NotFound
from vmlog.projects.backends import open_backend, vm_state
from vmlog.projects.model import Project
from vmlog.projects.releases import (
    ProjectRelease,
    ReleaseOutcome,
    guest_facts,
    guest_kind_for,
    guest_mount_commands,
    guest_run,
    host_mountpoints,
    hotplug_share,
    project_releases,
    public_source,
    with_release_shares,
    write_cernvm_seed,
    write_project_releases,
)
from vmlog.projects.store import ProjectFiles
from vmlog.releases import mounts
from vmlog.releases.sources import get_source
from vmlog.workspace import Workspace, workspace


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
            outcome.guest = "mounted"
            return
    if not guest_facts(files, project)["agent"]:
        outcome.guest = "next boot"
        outcome.warnings.append("mount it in the guest: " + guest_mount_commands([item])[0])
        return
    guest_run(files, project, guest_mount_commands([item]), timeout=60)
    outcome.guest = "mounted"


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
                    if guest_facts(files, project)["agent"]:
                        path = shlex.quote(item.guest_path)
                        guest_run(files, project, [f"! mountpoint -q {path} || umount {path}"], timeout=30)
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


def list_project_releases(project_name: str | None, *, ctx: Workspace | None = None) -> list[dict[str, Any]]:
    """The project's releases with whether each is mounted on the host now."""
    ctx = workspace(ctx)
    files, project = load(project_name, ctx)
    running = host_mountpoints(project.name, ctx.home)
    return [
        {
            **item.to_dict(),
            "project": project.name,
            "host_mountpoint": str(running[item.name]) if item.name in running else None,
        }
        for item in project_releases(files)
    ]
