"""Projects: create one on a base image, list, show, rename and remove them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import SnapshotModel, VMState
from hypervisors.errors import VMNotFound
from hypervisors.spec import DiskSpec, NicSpec, VMSpec
from vmlog.app.session import session
from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.projects import current as current_project
from vmlog.projects.backends import driver_for, open_backend, unsaved_changes, vm_state
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import SYSTEM_DISK, ChainRoot, Project, new_id
from vmlog.projects.names import check_project_name, project_holder, safe_file_part, vm_name_for
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage
from vmlog.workspace import Workspace, workspace


def resolve_project(name: str | None, ctx: Workspace | None = None) -> str:
    """``name``, or the current project if None (``NotFound`` with the fix if there is none)."""
    ctx = workspace(ctx)
    if name:
        return name
    current = current_project.get(ctx.home.data)
    if current is None or current not in ctx.projects.names():
        raise NotFound("no project given and no current project", fix="name one, or `vml project new NAME`")
    return current


def new_project(
    name: str,
    image: str,
    *,
    backend: str = "kvm",
    backend_options: dict[str, Any] | None = None,
    cpus: int = 1,
    memory_mib: int = 512,
    scratch_size: str | int | None = None,
    extra_disks: tuple[DiskSpec, ...] = (),
    nics: tuple[NicSpec, ...] | None = None,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> Project:
    """Create a project on a base image: a store ref (name[:version] or sha256) or a local image file.

    A local file is imported into the store first (format from its suffix: .qcow2, .vmdk, .vdi,
    anything else raw). ``scratch_size`` adds an empty second disk labelled ``scratch``. ``nics``
    replaces the default single NAT card (e.g. one with an SSH port forward).
    """
    ctx = workspace(ctx)
    check_project_name(name)
    backend = registry.canonical_name(backend)
    with session(ctx, name, "project new", image=image, backend=backend) as op:
        if name in ctx.projects.names():
            raise AlreadyExists(f"a project called {name!r} exists", fix="choose another name")
        with registry.open_backend(backend, **(backend_options or {})) as hv:
            driver = driver_for(hv)  # refuses a backend whose snapshot model this vmlog cannot drive yet
            stored = _base_image(ctx, image, progress)
            project = Project(
                id=new_id(), name=name, backend=backend, backend_options=dict(backend_options or {}),
                vm_name=vm_name_for(ctx.home, name), live={}, current=None, spec={},
                roots={SYSTEM_DISK: ChainRoot(format=stored.qemu_format, image_sha256=stored.sha256)},
                base={"name": stored.name, "version": stored.version, "sha256": stored.sha256},
            )
            staged = ctx.projects.staging(name)
            staged.write(project)  # first, so a repair after a crash can release the reference below
            ctx.images.add_ref(stored.sha256, project_holder(project))
            op.on_rollback(lambda: _discard_staged(ctx, staged, stored, project))
            new = driver.create_disks(
                staged, ctx.projects.files(name), stored, ctx.images, scratch_size=scratch_size, progress=progress
            )
        project.roots, project.live = new.roots, new.live
        run_dir = ctx.home.vm_runtime_dir(project.vm_name)
        project.spec = VMSpec(
            name=project.vm_name, cpus=cpus, memory_mib=memory_mib, disks=(*new.disks, *extra_disks),
            nics=nics if nics is not None else (NicSpec(),),
            serial_log=run_dir / "serial.log", channel_socket=run_dir / "channel.sock",
        ).to_dict()
        staged.write(project)
        ctx.projects.publish(staged, name)
        current_project.set_(ctx.home.data, name)
        op.message = f"base {stored.name}:{stored.version} ({stored.sha256[:12]})"
        progress("created", 1.0)
        return project


def _discard_staged(ctx: Workspace, staged: ProjectFiles, stored: StoredImage, project: Project) -> None:
    """Undo a project that was not published: its staging directory and its reference to the base."""
    if staged.root.exists():
        shutil.rmtree(staged.root, ignore_errors=True)
        ctx.images.remove_ref(stored.sha256, project_holder(project))


def _base_image(ctx: Workspace, image: str, progress: Progress) -> StoredImage:
    """The store image ``image`` names, importing a local image file into the store first."""
    path = Path(image).expanduser()
    if not path.is_file():
        return ctx.images.get(image)
    progress(f"importing {path.name} into the image store", 0.1)
    fmt = path.suffix.lstrip(".").lower()
    fmt = fmt if fmt in ("qcow2", "vmdk", "vdi") else "raw"
    return ctx.images.add_file(path, name=safe_file_part(path.stem), version="local", format=fmt)


def load(name: str | None, ctx: Workspace | None = None) -> tuple[ProjectFiles, Project]:
    ctx = workspace(ctx)
    files = ctx.projects.get(resolve_project(name, ctx))
    return files, files.load()


def list_projects(ctx: Workspace | None = None, *, with_vm_state: bool = True) -> list[dict[str, Any]]:
    ctx = workspace(ctx)
    current = current_project.get(ctx.home.data)
    result = []
    for name in ctx.projects.names():
        files = ctx.projects.files(name)
        project = files.load()
        states = files.states()
        result.append(
            {
                "name": name,
                "current": name == current,
                "backend": project.backend,
                "base": project.base,
                "states": len(states),
                "head": project.current,
                "disk_bytes": files.disk_bytes(),
                "vm": vm_state_safe(project) if with_vm_state else None,
            }
        )
    return result


def vm_state_safe(project: Project) -> str:
    try:
        with open_backend(project) as backend:
            return vm_state(backend, project.vm_name).value
    except Exception as exc:  # listing must not fail because one backend is down
        return f"unknown ({getattr(exc, 'message', exc)})"


def show_project(name: str | None, ctx: Workspace | None = None) -> dict[str, Any]:
    ctx = workspace(ctx)
    files, project = load(name, ctx)
    data = project.to_dict()
    data["vm_state"] = vm_state_safe(project)
    data["states"] = len(files.states())
    data["path"] = str(files.root)
    data["unsaved_changes"] = unsaved_changes(files, project)
    return data


def remove_project(name: str, *, ctx: Workspace | None = None) -> None:
    """Delete the VM, the project's files and its hold on the base image."""
    ctx = workspace(ctx)
    with session(ctx, name, "project rm"):
        files = ctx.projects.get(name)
        project = files.load()
        try:
            with open_backend(project) as backend:
                if backend.exists(project.vm_name):
                    backend.delete(project.vm_name)
        except VMNotFound:
            pass
        trashed = ctx.projects.trash(name)
        for root in project.roots.values():
            if root.image_sha256:
                ctx.images.remove_ref(root.image_sha256, project_holder(project))
        shutil.rmtree(trashed, ignore_errors=True)
        shutil.rmtree(ctx.home.vm_runtime_dir(project.vm_name), ignore_errors=True)
        if current_project.get(ctx.home.data) == name:
            current_project.set_(ctx.home.data, None)


def rename_project(old: str, new: str, *, ctx: Workspace | None = None) -> None:
    """Rename a project and its VM (the VM must be stopped: a suspended VM cannot change its name)."""
    ctx = workspace(ctx)
    check_project_name(new)
    with session(ctx, [old, new], "project rename", new=new) as op:
        files = ctx.projects.get(old)
        if new in ctx.projects.names():
            raise AlreadyExists(f"a project called {new!r} exists", fix="choose another name")
        project = files.load()
        with open_backend(project) as backend:
            state = vm_state(backend, project.vm_name)
            if state != VMState.STOPPED:
                raise InvalidInput(f"the VM of {old!r} is {state.value}", fix=f"`vml down {old}` first")
            if backend.snapshot_model == SnapshotModel.NATIVE_TREE and (
                files.states() or any(root.file for root in project.roots.values())
            ):
                raise InvalidInput(
                    f"the states and disks of {old!r} belong to its {backend.name} VM, which a rename would delete",
                    fix="keep the name, or export the states as bundles first",
                )
            if backend.exists(project.vm_name):
                backend.delete(project.vm_name)
        ctx.projects.rename(old, new)
        files = ctx.projects.files(new)
        project.name = new
        project.vm_name = vm_name_for(ctx.home, new)
        run_dir = ctx.home.vm_runtime_dir(project.vm_name)
        project.spec = {
            **project.spec,
            "name": project.vm_name,
            "serial_log": str(run_dir / "serial.log"),
            "channel_socket": str(run_dir / "channel.sock"),
        }
        files.write(project)
        ctx.logbook.rename_project(old, new)
        op.project = new
        if current_project.get(ctx.home.data) == old:
            current_project.set_(ctx.home.data, new)

