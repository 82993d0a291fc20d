"""The project service: what the CLI and the GUI both call to create, run, save, restore and switch.

Every mutating function takes the project's lock (``Busy`` if another process holds it) and writes
a logbook row before it starts and completes it after. Read-only functions take no lock. Long
functions accept a ``progress(message, fraction)`` callback.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import Capability, Hypervisor, SnapshotModel, VMState
from hypervisors.errors import VMNotFound
from hypervisors.spec import DiskSpec, NicSpec, VMSpec, check_vm_name
from vmlog import locking
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.logbook import Logbook, Operation
from vmlog.logbook.book import who
from vmlog.paths import VmlogHome, home
from vmlog.projects import current as current_project
from vmlog.projects import graph, refs
from vmlog.projects import releases as project_releases
from vmlog.projects.driver import Progress, StateDriver, no_progress
from vmlog.projects.model import SCRATCH_DISK, SYSTEM_DISK, ChainRoot, Project, State, new_id
from vmlog.projects.native_tree import NativeTree, create_blank, is_native_project
from vmlog.projects.overlay_chain import OverlayChain
from vmlog.projects.repair import StoreReport, check_store
from vmlog.projects.store import ProjectFiles, ProjectStore
from vmlog.store.images import ImageStore

AUTOSAVE_MESSAGE = "auto-saved before restore"


@dataclass
class Context:
    """Where the service works: one vmlog home, its image store, projects and logbook."""

    home: VmlogHome
    images: ImageStore
    projects: ProjectStore
    logbook: Logbook

    @classmethod
    def default(cls) -> Context:
        h = home().ensure()
        images = ImageStore(h.images)
        return cls(h, images, ProjectStore(h.projects, lambda sha: images.get(sha).path), Logbook(h.logbook))


def _ctx(ctx: Context | None) -> Context:
    return ctx or Context.default()


def project_holder(project: Project) -> str:
    """The name under which a project holds its base image in the store."""
    return f"project:{project.id}"


def vm_name_for(h: VmlogHome, project: str) -> str:
    return check_vm_name(f"vmlog-{h.home_id}-{project}")


def check_project_name(name: str) -> str:
    try:
        check_vm_name(name)
    except ValueError:
        raise InvalidInput(
            f"invalid project name {name!r}",
            fix="use letters, digits, '.', '_' or '-', starting with a letter or digit (at most 60)",
        ) from None
    if len(name) > 60:
        raise InvalidInput(f"project name {name!r} is too long", fix="use at most 60 characters")
    return name


# -- plumbing --------------------------------------------------------------------------------
def open_backend(project: Project) -> Hypervisor:
    return registry.open_backend(project.backend, **project.backend_options)


def driver_for(backend: Hypervisor | None) -> StateDriver:
    """The save/restore implementation for the backend's snapshot model."""
    if backend is None or backend.snapshot_model == SnapshotModel.OVERLAY_CHAIN:
        return OverlayChain(backend)
    return NativeTree(backend)


def unsaved_changes(files: ProjectFiles, project: Project) -> bool | None:
    """Whether the live layer holds work no state has saved; ``None`` when the backend cannot say now.

    vmlog reads its own overlay chain directly; a native snapshot tree has to be asked through its
    backend, which may be unreachable (then the answer is unknown, not "no changes").
    """
    if not is_native_project(project):
        return OverlayChain(None).live_has_changes(files)
    try:
        with open_backend(project) as backend:
            return driver_for(backend).live_has_changes(files)
    except Exception:
        return None


@contextmanager
def _mutation(
    ctx: Context, project: str | list[str], action: str, state: str | None = None, **args: Any
) -> Iterator[Operation]:
    names = [project] if isinstance(project, str) else project
    with locking.project_locks(ctx.home.locks, names, action):
        with ctx.logbook.operation(names[0], action, state, **args) as op:
            yield op


def resolve_project(name: str | None, ctx: Context | None = None) -> str:
    """``name``, or the current project if None (``NotFound`` with the fix if there is none)."""
    ctx = _ctx(ctx)
    if name:
        return name
    current = current_project.get(ctx.home.data)
    if current is None or current not in ctx.projects.names():
        raise NotFound("no project given and no current project", fix="name one, or `vml project new NAME`")
    return current


def _vm_state(backend: Hypervisor, vm_name: str) -> VMState:
    try:
        return backend.state(vm_name) if backend.exists(vm_name) else VMState.STOPPED
    except VMNotFound:
        return VMState.STOPPED


# -- projects --------------------------------------------------------------------------------
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
    ctx: Context | None = None,
    progress: Progress = no_progress,
) -> Project:
    """Create a project on a base image: a store ref (name[:version] or sha256) or a local image file.

    A local file is imported into the store first (format from its suffix: .qcow2, .vmdk, .vdi,
    anything else raw). ``scratch_size`` adds an empty second disk labelled ``scratch``. ``nics``
    replaces the default single NAT card (e.g. one with an SSH port forward).
    """
    ctx = _ctx(ctx)
    check_project_name(name)
    backend = registry.canonical_name(backend)
    with _mutation(ctx, name, "project new", image=image, backend=backend) as op:
        if name in ctx.projects.names():
            raise AlreadyExists(f"a project called {name!r} exists", fix="choose another name")
        with registry.open_backend(backend, **(backend_options or {})) as hv:
            driver_for(hv)  # refuse a backend whose snapshot model this vmlog cannot drive yet
            # a native-tree hypervisor writes its own differencing disks on one shared base file
            native_format = hv.native_disk_format if hv.snapshot_model == SnapshotModel.NATIVE_TREE else None
        path = Path(image).expanduser()
        if path.is_file():
            progress(f"importing {path.name} into the image store", 0.1)
            fmt = path.suffix.lstrip(".").lower()
            fmt = fmt if fmt in ("qcow2", "vmdk", "vdi") else "raw"
            stored = ctx.images.add_file(path, name=_safe_part(path.stem), version="local", format=fmt)
        else:
            stored = ctx.images.get(image)
        project = Project(
            id=new_id(),
            name=name,
            backend=backend,
            backend_options=dict(backend_options or {}),
            vm_name=vm_name_for(ctx.home, name),
            roots={SYSTEM_DISK: ChainRoot(format=stored.qemu_format, image_sha256=stored.sha256)},
            live={},
            current=None,
            spec={},
            base={"name": stored.name, "version": stored.version, "sha256": stored.sha256},
        )
        staged = ctx.projects.staging(name)
        staged.write(project)  # first, so a repair after a crash can release the reference below
        ctx.images.add_ref(stored.sha256, project_holder(project))
        try:
            if native_format:
                progress(f"converting the base to {native_format} (once, shared by every project)", 0.3)
                shared = ctx.images.converted(stored.sha256, native_format)
                disks = [DiskSpec(path=shared, format=native_format, label=SYSTEM_DISK)]  # type: ignore[arg-type]
            else:
                progress("creating the live layer", 0.5)
                live = staged.layers.new_name(SYSTEM_DISK)
                staged.layers.create_overlay(live, stored.path, stored.qemu_format)
                project.live[SYSTEM_DISK] = live
                disks = [DiskSpec(path=staged.layers.path(live), format="qcow2", label=SYSTEM_DISK)]
            if scratch_size and native_format:
                root = create_blank(staged, native_format, scratch_size)
                project.roots[SCRATCH_DISK] = ChainRoot(format=native_format, file=root)
                final = ctx.projects.files(name).layers.path(root)  # where it is once published
                disks.append(DiskSpec(path=final, format=native_format, label=SCRATCH_DISK))  # type: ignore[arg-type]
            elif scratch_size:
                root = "scratch-root.qcow2"
                staged.layers.create_blank(root, scratch_size)
                project.roots[SCRATCH_DISK] = ChainRoot(format="qcow2", file=root)
                live = staged.layers.new_name(SCRATCH_DISK)
                staged.layers.create_overlay(live, staged.layers.path(root), "qcow2")
                project.live[SCRATCH_DISK] = live
                disks.append(DiskSpec(path=staged.layers.path(live), format="qcow2", label=SCRATCH_DISK))
            disks.extend(extra_disks)
            run_dir = ctx.home.vm_runtime_dir(project.vm_name)
            spec = VMSpec(
                name=project.vm_name,
                cpus=cpus,
                memory_mib=memory_mib,
                disks=tuple(disks),
                nics=nics if nics is not None else (NicSpec(),),
                serial_log=run_dir / "serial.log",
                channel_socket=run_dir / "channel.sock",
            )
            project.spec = spec.to_dict()
            staged.write(project)
            ctx.projects.publish(staged, name)
        except BaseException:
            shutil.rmtree(staged.root, ignore_errors=True)
            ctx.images.remove_ref(stored.sha256, project_holder(project))
            raise
        current_project.set_(ctx.home.data, name)
        op.message = f"base {stored.name}:{stored.version} ({stored.sha256[:12]})"
        progress("created", 1.0)
        return project


def _safe_part(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip(".-") or "image"
    return cleaned[:60]


def load(name: str | None, ctx: Context | None = None) -> tuple[ProjectFiles, Project]:
    ctx = _ctx(ctx)
    files = ctx.projects.get(resolve_project(name, ctx))
    return files, files.load()


def list_projects(ctx: Context | None = None, *, with_vm_state: bool = True) -> list[dict[str, Any]]:
    ctx = _ctx(ctx)
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
                "vm": _vm_state_safe(project) if with_vm_state else None,
            }
        )
    return result


def _vm_state_safe(project: Project) -> str:
    try:
        with open_backend(project) as backend:
            return _vm_state(backend, project.vm_name).value
    except Exception as exc:  # listing must not fail because one backend is down
        return f"unknown ({getattr(exc, 'message', exc)})"


def show_project(name: str | None, ctx: Context | None = None) -> dict[str, Any]:
    ctx = _ctx(ctx)
    files, project = load(name, ctx)
    data = project.to_dict()
    data["vm_state"] = _vm_state_safe(project)
    data["states"] = len(files.states())
    data["path"] = str(files.root)
    data["unsaved_changes"] = unsaved_changes(files, project)
    return data


def remove_project(name: str, *, ctx: Context | None = None) -> None:
    """Delete the VM, the project's files and its hold on the base image."""
    ctx = _ctx(ctx)
    with _mutation(ctx, name, "project rm"):
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


def rename_project(old: str, new: str, *, ctx: Context | None = None) -> None:
    """Rename a project and its VM (the VM must be stopped: a suspended VM cannot change its name)."""
    ctx = _ctx(ctx)
    check_project_name(new)
    with _mutation(ctx, [old, new], "project rename", new=new) as op:
        files = ctx.projects.get(old)
        if new in ctx.projects.names():
            raise AlreadyExists(f"a project called {new!r} exists", fix="choose another name")
        project = files.load()
        with open_backend(project) as backend:
            state = _vm_state(backend, project.vm_name)
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


# -- running ---------------------------------------------------------------------------------
def _start(backend: Hypervisor, files: ProjectFiles, project: Project) -> list[str]:
    """Start or resume the VM; on a cold boot its releases are shared in. Returns warnings."""
    spec = files.vm_spec(project)
    for path in (spec.serial_log, spec.channel_socket):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if not backend.exists(project.vm_name):
        backend.define(spec)
    state = backend.state(project.vm_name)
    if state in (VMState.RUNNING, VMState.TRANSITIONING):
        return []
    if state == VMState.PAUSED:
        backend.resume(project.vm_name)
        return []
    booting = state != VMState.SAVED
    warnings = project_releases.before_boot(files, project) if booting else []
    if state == VMState.CRASHED:
        backend.poweroff(project.vm_name)
        state = VMState.STOPPED
    if state == VMState.STOPPED:
        backend.redefine(spec)  # project.json decides which layers the VM writes into
    if spec.channel_socket is not None and spec.channel_socket.exists():
        spec.channel_socket.unlink()  # a stale socket of the last run; the hypervisor creates a new one
    backend.start(project.vm_name)
    return warnings + (project_releases.after_boot(files, project) if booting else [])


def up(name: str | None = None, *, ctx: Context | None = None, progress: Progress = no_progress) -> str:
    """Start the project's VM (resuming it if it was suspended); it becomes the current project."""
    ctx = _ctx(ctx)
    name = resolve_project(name, ctx)
    with _mutation(ctx, name, "up") as op:
        files = ctx.projects.get(name)
        project = files.load()
        op.state_id = project.current
        with open_backend(project) as backend:
            before = _vm_state(backend, project.vm_name)
            progress("starting the VM" if before == VMState.STOPPED else "resuming the VM", None)
            warnings = _start(backend, files, project)
        op.message = (
            "resumed"
            if before == VMState.SAVED
            else ("already running" if before == VMState.RUNNING else "booted")
        ) + "".join(f"; {w}" for w in warnings)
        current_project.set_(ctx.home.data, name)
        return op.message


DOWN_MODES = ("shutdown", "save", "poweroff")


def down(
    name: str | None = None,
    *,
    mode: str = "shutdown",
    timeout: float = 60.0,
    ctx: Context | None = None,
    progress: Progress = no_progress,
) -> None:
    """Stop the VM: ACPI shutdown (default), ``save`` (suspend with memory) or ``poweroff``."""
    ctx = _ctx(ctx)
    if mode not in DOWN_MODES:
        raise InvalidInput(f"unknown stop mode {mode!r}", fix=f"use one of {', '.join(DOWN_MODES)}")
    name = resolve_project(name, ctx)
    with _mutation(ctx, name, "down", mode=mode) as op:
        files = ctx.projects.get(name)
        project = files.load()
        op.state_id = project.current
        with open_backend(project) as backend:
            state = _vm_state(backend, project.vm_name)
            if state in (VMState.STOPPED, VMState.SAVED):
                op.message = f"already {state.value}"
                return
            progress(f"{mode} of the VM", None)
            if mode == "save":
                project_releases.refuse_memory_save(project, "suspend")
                backend.suspend(project.vm_name)
            elif mode == "poweroff":
                backend.poweroff(project.vm_name)
            else:
                backend.shutdown(project.vm_name, timeout=timeout)


def status(name: str | None = None, *, ctx: Context | None = None) -> dict[str, Any]:
    ctx = _ctx(ctx)
    files, project = load(name, ctx)
    states = files.states()
    head = states.get(project.current) if project.current else None
    return {
        "project": project.name,
        "vm_name": project.vm_name,
        "backend": project.backend,
        "vm": _vm_state_safe(project),
        "state": head.id if head else None,
        "state_name": head.name if head else None,
        "unsaved_changes": unsaved_changes(files, project),
        "serial_log": project.spec.get("serial_log"),
        "busy": locking.holder(ctx.home.locks, project.name),
    }


def console_tail(name: str | None = None, *, lines: int = 40, ctx: Context | None = None) -> str:
    """The last lines of the guest's serial console log."""
    ctx = _ctx(ctx)
    _files, project = load(name, ctx)
    log = project.spec.get("serial_log")
    if not log or not Path(log).is_file():
        raise NotFound(
            f"project {project.name!r} has no console log yet", fix=f"`vml up {project.name}` first"
        )
    text = Path(log).read_bytes()[-256 * 1024 :].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def console_command(name: str | None = None, *, ctx: Context | None = None) -> list[str]:
    """The command that attaches a terminal to the project's running VM console (``Unsupported`` if none)."""
    ctx = _ctx(ctx)
    _files, project = load(name, ctx)
    with open_backend(project) as backend:
        return backend.console_command(project.vm_name)


def switch(
    target: str, *, source: str | None = None, ctx: Context | None = None, progress: Progress = no_progress
) -> dict[str, Any]:
    """Suspend the running project (memory kept) and resume ``target`` where it was, or boot it."""
    ctx = _ctx(ctx)
    source = source or current_project.get(ctx.home.data)
    if source == target or source not in ctx.projects.names():
        source = None
    names = [target] + ([source] if source else [])
    with _mutation(ctx, names, "switch", source=source, target=target) as op:
        result: dict[str, Any] = {"from": source, "to": target, "suspended": False}
        target_files = ctx.projects.get(target)
        target_project = target_files.load()
        if source:
            source_project = ctx.projects.get(source).load()
            with open_backend(source_project) as backend:
                if _vm_state(backend, source_project.vm_name) in (VMState.RUNNING, VMState.PAUSED):
                    project_releases.refuse_memory_save(source_project, "suspend")
                    progress(f"suspending {source}", 0.2)
                    backend.suspend(source_project.vm_name)
                    result["suspended"] = True
        with open_backend(target_project) as backend:
            before = _vm_state(backend, target_project.vm_name)
            progress(f"{'resuming' if before == VMState.SAVED else 'starting'} {target}", 0.6)
            result["warnings"] = _start(backend, target_files, target_project)
        result["target_was"] = before.value
        op.state_id = target_project.current
        op.message = f"{source or '-'} -> {target} ({'resumed' if before == VMState.SAVED else before.value})"
        current_project.set_(ctx.home.data, target)
        progress("switched", 1.0)
        return result


# -- states ----------------------------------------------------------------------------------
def save_state(
    project_name: str | None = None,
    name: str | None = None,
    *,
    message: str = "",
    memory: bool = False,
    ctx: Context | None = None,
    progress: Progress = no_progress,
) -> State:
    """Freeze the live layer as a new state (O(1) in disk size, also while the VM runs)."""
    ctx = _ctx(ctx)
    project_name = resolve_project(project_name, ctx)
    with _mutation(ctx, project_name, "state save", name=name, memory=memory) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        if memory:
            project_releases.refuse_memory_save(project, "save the memory of")
        with open_backend(project) as backend:
            state = driver_for(backend).save(
                files, name=name, message=message, author=who(), memory=memory, progress=progress
            )
        state = project_releases.record_in_state(files, state)  # the releases' exact revisions
        op.state_id = state.id
        op.message = message or state.name
        return state


def states(
    project_name: str | None = None, *, ctx: Context | None = None
) -> tuple[Project, dict[str, State]]:
    files, project = load(project_name, ctx)
    return project, files.states()


def layer_sizes(project_name: str | None = None, *, ctx: Context | None = None) -> dict[str, int | None]:
    """Disk space each state's own frozen layers (and memory image) take, by state id.

    ``None`` where vmlog holds no layer of its own (a native snapshot tree keeps it in the hypervisor).
    """
    files, _project = load(project_name, ctx)
    sizes: dict[str, int | None] = {}
    for state in files.states().values():
        paths = [files.layers.path(name) for name in state.layers.values()]
        if state.memory:
            paths.append(files.state_dir(state.id) / state.memory)
        if not paths:
            sizes[state.id] = None
            continue
        sizes[state.id] = sum(p.stat().st_blocks * 512 for p in paths if p.exists())
    return sizes


def state_tree(project_name: str | None = None, *, ctx: Context | None = None) -> list[str]:
    files, project = load(project_name, ctx)
    all_states = files.states()
    dirty = unsaved_changes(files, project)

    def describe(state: State) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(state.created))
        parts = [state.id[:8], state.name or "", f"({when})"]
        if state.memory:
            parts.append("[memory]")
        if state.message and state.message != state.name:
            parts.append(f"- {state.message}")
        if state.id == project.current:
            parts.append("<- HEAD")
        return " ".join(p for p in parts if p)

    lines = graph.draw(all_states, project.current, describe, live_dirty=dirty)
    if project.current is None:
        lines.insert(0, "+ (live layer on the base image" + (", unsaved changes)" if dirty else ")"))
    return lines


def show_state(project_name: str | None, ref: str, *, ctx: Context | None = None) -> dict[str, Any]:
    ctx = _ctx(ctx)
    files, project = load(project_name, ctx)
    all_states = files.states()
    state = refs.resolve(all_states, project.current, ref)
    data = state.to_dict()
    data["current"] = state.id == project.current
    data["children"] = [c.id for c in refs.children(all_states, state.id)]
    data["notes"] = [n.to_dict() for n in ctx.logbook.notes(project=project.name, state=state.id)]
    return data


def restore_state(
    project_name: str | None,
    ref: str,
    *,
    discard: bool = False,
    stop: bool = False,
    ctx: Context | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Go back to state ``ref`` (branching the tree). Unsaved work is auto-saved first unless ``discard``.

    A running or suspended VM is refused unless ``stop``: then it is saved with its memory (if the
    backend can) or shut down, so nothing is lost.
    """
    ctx = _ctx(ctx)
    project_name = resolve_project(project_name, ctx)
    with _mutation(ctx, project_name, "state restore", ref=ref, discard=discard) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        target = refs.resolve(files.states(), project.current, ref)
        op.state_id = target.id
        result: dict[str, Any] = {"state": target.id, "autosaved": None}
        with open_backend(project) as backend:
            driver = driver_for(backend)
            vm = _vm_state(backend, project.vm_name)
            if vm not in (VMState.STOPPED, VMState.CRASHED):
                if not stop and not discard:
                    raise InvalidInput(
                        f"the VM of {project.name!r} is {vm.value}; restoring would lose what it holds"
                        " in memory",
                        fix="`vml down` first, or pass --stop (auto-saves it with its memory) or --discard",
                    )
                if discard:
                    backend.poweroff(project.vm_name)
                    if _vm_state(backend, project.vm_name) == VMState.SAVED:
                        backend.discard_saved_state(project.vm_name)
                else:
                    if vm == VMState.SAVED:
                        progress("resuming the suspended VM to save it", 0.05)
                        backend.start(project.vm_name)
                    if backend.can(Capability.MEMORY_IMAGE) and not project_releases.shares_memory_block(project):
                        progress("auto-saving the running VM with its memory", 0.1)
                        saved = driver.save(
                            files,
                            name=None,
                            message=AUTOSAVE_MESSAGE,
                            author=who(),
                            memory=True,
                            resume=False,
                        )
                        result["autosaved"] = saved.id
                    else:
                        progress("shutting the VM down", 0.1)
                        backend.shutdown(project.vm_name)
            elif vm == VMState.CRASHED:
                backend.poweroff(project.vm_name)
            if result["autosaved"] is None and not discard and driver.live_has_changes(files):
                progress("auto-saving unsaved changes", 0.2)
                saved = driver.save(files, name=None, message=AUTOSAVE_MESSAGE, author=who(), memory=False)
                result["autosaved"] = saved.id
            driver.restore(files, target, progress=progress)
            progress("mounting the state's releases", 0.8)
            releases = project_releases.apply_state(files, target)
            result["releases"] = releases.to_dict()
            result["running"] = _vm_state(backend, project.vm_name) == VMState.RUNNING
        op.message = (
            f"restored {target.label()}"
            + (f", unsaved work auto-saved as {result['autosaved'][:8]}" if result["autosaved"] else "")
            + "".join(f"; {w}" for w in releases.warnings)
        )
        current_project.set_(ctx.home.data, project_name)
        return result


def remove_state(
    project_name: str | None, ref: str, *, ctx: Context | None = None, progress: Progress = no_progress
) -> State:
    ctx = _ctx(ctx)
    project_name = resolve_project(project_name, ctx)
    with _mutation(ctx, project_name, "state rm", ref=ref) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        state = refs.resolve(files.states(), project.current, ref)
        op.state_id = state.id
        with open_backend(project) as backend:
            driver_for(backend).remove(files, state, progress=progress)
        op.message = f"removed {state.label()}"
        return state


def rename_state(project_name: str | None, ref: str, new_name: str, *, ctx: Context | None = None) -> State:
    ctx = _ctx(ctx)
    project_name = resolve_project(project_name, ctx)
    with _mutation(ctx, project_name, "state rename", ref=ref, name=new_name) as op:
        files = ctx.projects.get(project_name)
        project = files.load()
        all_states = files.states()
        state = refs.resolve(all_states, project.current, ref)
        if any(s.name == new_name and s.id != state.id for s in all_states.values()):
            raise AlreadyExists(f"a state called {new_name!r} exists", fix="choose another name")
        renamed = dataclasses.replace(state, name=new_name)
        files.rewrite_state(renamed)
        op.state_id = state.id
        op.message = f"{state.name or state.id[:8]} -> {new_name}"
        return renamed


# -- logbook ---------------------------------------------------------------------------------
def add_note(
    text: str, *, project_name: str | None = None, ref: str | None = None, ctx: Context | None = None
) -> dict[str, Any]:
    """Attach a note to a state (default: the current project's current state)."""
    ctx = _ctx(ctx)
    files, project = load(project_name, ctx)
    state_id = project.current
    if ref is not None:
        state_id = refs.resolve(files.states(), project.current, ref).id
    return ctx.logbook.add_note(text, project.name, state_id).to_dict()


def history(
    project_name: str | None = None, *, since: float | None = None, ctx: Context | None = None
) -> list[dict[str, Any]]:
    ctx = _ctx(ctx)
    return [item.to_dict() for item in ctx.logbook.history(project=project_name, since=since)]


# -- health ----------------------------------------------------------------------------------
def check_projects(*, repair: bool = False, ctx: Context | None = None) -> StoreReport:
    """What ``vml doctor`` reports about the project store, and repairs with ``--repair``."""
    ctx = _ctx(ctx)

    def backend_for(project: Project) -> Hypervisor | None:
        try:
            return open_backend(project)
        except Exception:  # a repair must work without the backend
            return None

    def release(sha: str, holder: str) -> None:
        try:
            ctx.images.remove_ref(sha, holder)
        except VmlogError:
            pass

    return check_store(ctx.projects, repair=repair, release_ref=release, backend_for=backend_for)
