"""Projects: create one on a base image, list, show, rename and remove them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import Capability, VMState
from hypervisors.errors import HypervisorError, VMNotFound
from hypervisors.spec import DiskSpec, NicSpec, VMSpec
from vmlog.app.backend_names import typed_backend
from vmlog.app.listings import ProjectSummary, summary_of
from vmlog.app.listings import list_projects as list_projects  # the listing lives with the quick listings
from vmlog.app.listings import resolve_project as resolve_project
from vmlog.app.results import MappingResult, VMStatus
from vmlog.app.session import Session, session
from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.projects import current as current_project
from vmlog.projects.backends import driver_for, open_backend, unsaved_changes, vm_state
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import SYSTEM_DISK, ChainRoot, Project, new_id
from vmlog.projects.names import check_project_name, project_holder, safe_file_part, vm_name_for
from vmlog.projects.remote_layers import remove_project_volumes
from vmlog.projects.rules import check_renamable
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage
from vmlog.workspace import Workspace, workspace


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
            stored = base_image(image, progress=progress, ctx=ctx)
            project = Project(
                id=new_id(), name=name, backend=backend, backend_options=dict(backend_options or {}),
                vm_name=vm_name_for(ctx.home, name), live={}, current=None, spec={},
                roots={SYSTEM_DISK: ChainRoot(format=stored.qemu_format, image_sha256=stored.sha256)},
                base={"name": stored.name, "version": stored.version, "sha256": stored.sha256},
            )
            if hv.can(Capability.REMOTE):  # the layers live on the host, in this home's pool there
                project.storage_owner = ctx.home.home_id
                project.backend_options["uri"] = hv.host_storage(ctx.home.home_id).host
                progress(f"uploading the base to {project.uri} (once per host)", 0.2)
            record_host(ctx, op, name, project)
            staged = ctx.projects.staging(name)
            staged.write(project)  # first, so a repair after a crash can release the reference below
            ctx.images.add_ref(stored.sha256, project_holder(project))
            op.on_rollback(lambda: _discard_staged(ctx, staged, stored, project))
            new = driver.create_disks(
                staged, ctx.projects.files(name), stored, ctx.images, scratch_size=scratch_size, progress=progress
            )
        project.roots, project.live = new.roots, new.live
        run_dir = ctx.home.vm_runtime_dir(project.vm_name)
        local = not project.remote  # a remote host's console and channel are reached over the connection
        project.spec = VMSpec(
            name=project.vm_name, cpus=cpus, memory_mib=memory_mib, disks=(*new.disks, *extra_disks),
            nics=nics if nics is not None else (NicSpec(),),
            serial_log=run_dir / "serial.log" if local else None,
            channel_socket=run_dir / "channel.sock" if local else None,
        ).to_dict()
        staged.write(project)
        ctx.projects.publish(staged, name)
        current_project.set_(ctx.home.data, name)
        op.message = f"base {stored.name}:{stored.version} ({stored.sha256[:12]})"
        progress("created", 1.0)
        return project


def record_host(ctx: Workspace, op: Session, name: str, project: Project) -> None:
    """The logbook's rows of project ``name`` name the host it lives on from now on (none: this machine)."""
    host = project.uri if project.remote else None
    ctx.logbook.set_project_host(name, host)
    op.operation.vm_host = host
    op.on_rollback(lambda: ctx.logbook.set_project_host(name, None))  # no project of that name came to be


def _discard_staged(ctx: Workspace, staged: ProjectFiles, stored: StoredImage, project: Project) -> None:
    """Undo a project that was not published: its staging directory (its volumes on a remote host) and its
    reference to the base."""
    if project.remote and staged.exists():
        staged_project = staged.load()
        remove_project_volumes(staged.layers, staged_project, [])
    if staged.root.exists():
        shutil.rmtree(staged.root, ignore_errors=True)
        ctx.images.remove_ref(stored.sha256, project_holder(project))


def base_image(image: str, *, progress: Progress = no_progress, ctx: Workspace | None = None) -> StoredImage:
    """The store image ``image`` names, importing a local image file into the store first.

    A local file's format comes from its bytes (an Ubuntu ``*.img`` is qcow2; a ``.box`` or ``.ova``
    gives its system disk), never from its name. A store reference may be spelt as Vagrant does
    (``org/name:version``), and may name a version that shares another version's image.
    """
    from vmlog.appliances.model import store_ref  # imported here: listings never pay for the appliance modules
    from vmlog.appliances.pull import find_stored, import_local_image

    ctx = workspace(ctx)
    path = Path(image).expanduser()
    if not path.is_file():
        ref = store_ref(image)
        try:
            return ctx.images.get(ref)
        except NotFound:
            name, _, version = ref.partition(":")
            found = find_stored(ctx.images, name, version) if version else None
            if found is None:
                raise
            return found
    progress(f"importing {path.name} into the image store", 0.1)
    return import_local_image(ctx.images, path, name=safe_file_part(path.stem)).images[0]


def load(name: str | None, ctx: Workspace | None = None) -> tuple[ProjectFiles, Project]:
    ctx = workspace(ctx)
    files = ctx.projects.get(resolve_project(name, ctx))
    return files, files.load()


def check_backend(name: str) -> str:
    """The registry name of backend ``name``; ``InvalidInput`` (exit 2) before anything is pulled or created."""
    return typed_backend(name)


def base_to_pull(ref: str, backend: str, ctx: Workspace | None = None) -> str | None:
    """The disk format to pull ``ref`` in when it names an appliance only in a catalog; None when nothing to pull.

    A local file or an appliance already in the image store needs no pull, and neither does a
    name no catalog knows (``new_project`` then says so, with how to find one).
    """
    from vmlog.appliances.catalog import Catalogs  # imported here: listings never pay for the catalogs
    from vmlog.appliances.catalog_cache import CACHE_DIR_NAME
    from vmlog.appliances.model import store_ref

    ctx = workspace(ctx)
    backend = check_backend(backend)
    if Path(ref).expanduser().exists():
        return None
    try:
        ctx.images.get(store_ref(ref))
        return None
    except NotFound:
        pass
    try:
        Catalogs(ctx.home.config, cache_dir=ctx.home.cache / CACHE_DIR_NAME).get(ref)
    except NotFound:
        return None
    try:
        return registry.backend_class(backend).native_disk_format
    except HypervisorError:  # not installed here: the image store's own format
        return "qcow2"


@dataclass(frozen=True)
class ProjectDetails(MappingResult):
    """One project as ``vml project show`` shows it: its record, its VM's state, where its files are."""

    project: Project
    vm: VMStatus
    states: int
    path: Path
    unsaved_changes: bool
    spec: dict[str, Any] | None = None  # the VM spec as the VM gets it (disks at their live layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.project.to_dict(),
            **({"spec": self.spec} if self.spec is not None else {}),
            **({"uri": self.project.uri} if self.project.uri else {}),
            "vm_state": str(self.vm),
            "states": self.states,
            "path": str(self.path),
            "unsaved_changes": self.unsaved_changes,
        }


def summarize(
    files: ProjectFiles,
    current: str | None,
    *,
    with_vm_state: bool = True,
    vm: VMStatus | None = None,
    project: Project | None = None,
) -> ProjectSummary:
    """One project's summary; ``vm`` when the caller already knows its VM's state (one listing for many).

    Reads ``project.json`` once (not at all if the caller gives ``project``) and the small usage
    cache, never every state record or every layer file.
    """
    if project is None:
        project = files.load()
    if vm is None and with_vm_state:
        vm = vm_status(project)
    return summary_of(files, project, current, vm if with_vm_state else None)


def vm_status(project: Project) -> VMStatus:
    """The project's VM state, or unknown with the reason (a listing must not fail because one backend is down)."""
    try:
        with open_backend(project) as backend:
            return VMStatus(vm_state(backend, project.vm_name))
    except Exception as exc:  # any backend failure reads as "unknown", with its words
        return VMStatus(None, str(getattr(exc, "message", exc)))


def show_project(name: str | None, ctx: Workspace | None = None) -> ProjectDetails:
    ctx = workspace(ctx)
    files, project = load(name, ctx)
    return ProjectDetails(
        project=project,
        vm=vm_status(project),
        states=len(files.states()),
        path=files.root,
        unsaved_changes=unsaved_changes(files, project),
        spec=files.vm_spec(project).to_dict(),
    )


def remove_project(name: str, *, ctx: Workspace | None = None) -> None:
    """Delete the VM, the project's files and its hold on the base image."""
    ctx = workspace(ctx)
    with session(ctx, name, "project rm") as op:
        files = ctx.projects.get(name)
        project = files.load()
        try:
            with open_backend(project) as backend:
                if backend.exists(project.vm_name):
                    backend.delete(project.vm_name)
        except VMNotFound:
            pass
        kept = remove_project_volumes(files.layers, project, [s.layers for s in files.states().values()])
        if kept:
            op.message = f"volumes left on {project.uri} (other volumes back onto them): {', '.join(kept)}"
        trashed = ctx.projects.trash(name)
        for root in project.roots.values():
            if root.image_sha256:
                ctx.images.remove_ref(root.image_sha256, project_holder(project))
        shutil.rmtree(trashed, ignore_errors=True)
        shutil.rmtree(ctx.home.vm_runtime_dir(project.vm_name), ignore_errors=True)
        ctx.logbook.set_project_host(name, None)  # this row keeps the host; a later project of the name has its own
        if current_project.get(ctx.home.data) == name:
            current_project.set_(ctx.home.data, None)


def rename_project(old: str, new: str, *, ctx: Workspace | None = None) -> None:
    """Rename a project and its VM (the VM must be stopped: a suspended VM cannot change its name).

    The VM is deleted and defined anew under the new name by the next ``vml up``; if the rename
    fails half-way, the files and the logbook go back to the old name.
    """
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
            check_renamable(backend, files, project)
            if backend.exists(project.vm_name):
                backend.delete(project.vm_name)
        ctx.projects.rename(old, new)
        original = ctx.projects.files(new).load()
        op.on_rollback(lambda: (ctx.projects.rename(new, old), ctx.projects.files(old).write(original)))
        files = ctx.projects.files(new)
        project.name = new
        project.vm_name = vm_name_for(ctx.home, new)
        run_dir = ctx.home.vm_runtime_dir(project.vm_name)
        project.spec = {**project.spec, "name": project.vm_name}
        if not project.remote:
            project.spec.update(serial_log=str(run_dir / "serial.log"), channel_socket=str(run_dir / "channel.sock"))
        files.write(project)
        ctx.logbook.rename_project(old, new)
        op.on_rollback(lambda: ctx.logbook.rename_project(new, old))
        op.project = new
        if current_project.get(ctx.home.data) == old:
            current_project.set_(ctx.home.data, new)
