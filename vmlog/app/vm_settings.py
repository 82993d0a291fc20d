"""A project's VM settings: CPUs, memory, disk sizes and shared folders, read and changed after creation.

A change is written to the project's VM spec, which the next cold boot defines the VM from (a suspended VM
resumes as it was, then boots with the new settings); shared folders are plugged into a running VM where
the backend can hot-plug them. The change is one logbook row, and every state saved afterwards records
the new spec, so restoring or exporting it carries the settings along.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import qemu_img
from hypervisors.base import Capability, VMState
from hypervisors.errors import OperationFailed, Unsupported
from hypervisors.spec import SharedFolder, VMSpec
from vmlog.app.projects import load, resolve_project
from vmlog.app.results import MappingResult
from vmlog.app.session import session
from vmlog.errors import InvalidInput
from vmlog.projects.backends import is_native_project, open_backend, vm_state
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import SYSTEM_DISK
from vmlog.projects.store import ProjectFiles
from vmlog.workspace import Workspace, workspace

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,35}$")


def parse_size(text: str | int) -> int:
    """``20G``, ``512M``, ``123456`` -> bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    if not match:
        raise InvalidInput(f"cannot read size {text!r}", fix="use e.g. 512M or 20G")
    factor = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[match.group(2).upper()]
    return int(float(match.group(1)) * factor)


def parse_share(text: str) -> SharedFolder:
    """``HOST_DIR:TAG`` or ``HOST_DIR:TAG:rw`` (read-only unless ``rw``) -> a shared folder."""
    parts = text.rsplit(":", 2) if text.endswith((":rw", ":ro")) else text.rsplit(":", 1)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise InvalidInput(f"cannot read shared folder {text!r}", fix="give it as HOST_DIR:TAG or HOST_DIR:TAG:rw")
    host, tag = Path(parts[0]).expanduser(), parts[1]
    if not _TAG.match(tag):
        raise InvalidInput(f"invalid share tag {tag!r}", fix="use up to 36 letters, digits, '.', '_' or '-'")
    if not host.is_dir():
        raise InvalidInput(f"{host} is not a directory", fix="share an existing directory of this machine")
    return SharedFolder(tag=tag, host_path=host.resolve(), readonly=not (len(parts) == 3 and parts[2] == "rw"))


@dataclass(frozen=True)
class Share:
    """A shared folder as settings show it."""

    tag: str
    host_path: str
    readonly: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class VMSettings(MappingResult):
    """What the project's VM is given: CPUs, memory, each disk's virtual size and the shared folders."""

    project: str
    cpus: int
    memory_mib: int
    disk_sizes: dict[str, int | None]  # disk label -> virtual size in bytes (None: cannot tell)
    shares: list[Share]
    vm: VMState

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project, "cpus": self.cpus, "memory_mib": self.memory_mib,
            "disk_sizes": dict(self.disk_sizes), "shares": [s.to_dict() for s in self.shares], "vm": self.vm.value,
        }


@dataclass
class SettingsChange(MappingResult):
    """What ``vml project set`` changed, and when each change takes effect."""

    settings: VMSettings
    changed: list[str] = field(default_factory=list)  # e.g. "cpus 1 -> 2"
    live: list[str] = field(default_factory=list)  # changes the running VM has already
    next_boot: list[str] = field(default_factory=list)  # changes that wait for the next cold boot

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "changed": self.changed, "live": self.live,
                "next_boot": self.next_boot}


def _disk_sizes(spec: VMSpec) -> dict[str, int | None]:
    sizes: dict[str, int | None] = {}
    for disk in spec.disks:
        if disk.device != "disk" or not disk.label:
            continue
        try:
            sizes[disk.label] = int(qemu_img.info(disk.path, disk.format)["virtual-size"])
        except (OSError, ValueError, KeyError, OperationFailed):
            sizes[disk.label] = None
    return sizes


def _remote_disk_sizes(files: ProjectFiles, spec: VMSpec, live: dict[str, str]) -> dict[str, int | None]:
    """A remote project's disk sizes from its volumes' capacities (the spec's paths are the host's)."""
    return {disk.label: files.layers.capacity(live[disk.label]) if disk.label in live else None
            for disk in spec.disks if disk.device == "disk" and disk.label}


def _current(files: ProjectFiles, state: VMState) -> VMSettings:
    project = files.load()
    spec = files.vm_spec(project)
    shares = [Share(s.tag, str(s.host_path), s.readonly) for s in spec.shared_folders]
    sizes = _remote_disk_sizes(files, spec, project.live) if project.remote else _disk_sizes(spec)
    return VMSettings(project.name, spec.cpus, spec.memory_mib, sizes, shares, state)


def vm_settings(name: str | None = None, *, ctx: Workspace | None = None) -> VMSettings:
    """The project's VM settings as the next boot will use them (read-only, no lock)."""
    files, project = load(name, ctx)
    with open_backend(project) as backend:
        state = vm_state(backend, project.vm_name)
    return _current(files, state)


def set_vm_settings(
    name: str | None = None,
    *,
    cpus: int | None = None,
    memory_mib: int | None = None,
    disk_size: str | int | None = None,
    disk: str = SYSTEM_DISK,
    add_shares: Sequence[str | SharedFolder] = (),
    remove_shares: Sequence[str] = (),
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> SettingsChange:
    """Change the VM's settings; CPUs and memory apply at the next cold boot, shares live where the backend can.

    A disk only grows, and only while the VM is off (a guest must not see its disk change under it).
    """
    ctx = workspace(ctx)
    name = resolve_project(name, ctx)
    new_shares = [s if isinstance(s, SharedFolder) else parse_share(s) for s in add_shares]
    size = parse_size(disk_size) if disk_size is not None else None
    args = {"cpus": cpus, "memory_mib": memory_mib, "disk_size": size, "disk": disk if size else None,
            "add_shares": [f"{s.host_path}:{s.tag}" for s in new_shares], "remove_shares": list(remove_shares)}
    with session(ctx, name, "project set", **{k: v for k, v in args.items() if v}) as op:
        files = ctx.projects.get(name)
        project = files.load()
        op.state_id = project.current
        spec = VMSpec.from_dict(project.spec)
        with open_backend(project) as backend:
            state = vm_state(backend, project.vm_name)
            change = SettingsChange(_current(files, state))
            on = state not in (VMState.STOPPED, VMState.CRASHED)
            updated = _new_spec(spec, cpus, memory_mib, change, on)
            updated = _change_shares(backend, project.vm_name, updated, new_shares, remove_shares, change, state)
            if size is not None:
                _grow_disk(files, project, disk, size, change, state, progress)
            project.spec = updated.to_dict()
            files.write(project)
        change.settings = _current(files, state)
        op.message = "; ".join(change.changed) or "nothing changed"
        return change


def _new_spec(spec: VMSpec, cpus: int | None, memory_mib: int | None, change: SettingsChange, on: bool) -> VMSpec:
    try:
        updated = spec.replace(cpus=cpus or spec.cpus, memory_mib=memory_mib or spec.memory_mib)
    except ValueError as exc:
        raise InvalidInput(str(exc), fix="give at least 1 CPU and 32 MiB of memory") from exc
    for what, old, new in (("cpus", spec.cpus, updated.cpus), ("memory", spec.memory_mib, updated.memory_mib)):
        if old != new:
            text = f"{what} {old} -> {new}" + (" MiB" if what == "memory" else "")
            change.changed.append(text)
            if on:
                change.next_boot.append(text)
    return updated


def _change_shares(
    backend: Any, vm_name: str, spec: VMSpec, add: list[SharedFolder], remove: Sequence[str],
    change: SettingsChange, state: VMState,
) -> VMSpec:
    """The spec with shares removed and added; a running VM gets them at once if the backend hot-plugs."""
    by_tag = {s.tag: s for s in spec.shared_folders}
    for tag in remove:
        if tag not in by_tag:
            raise InvalidInput(f"no shared folder tagged {tag!r}", fix="give the tag of a folder the project shares")
    for share in add:
        if share.tag in by_tag and share.tag not in remove:
            raise InvalidInput(f"a shared folder tagged {share.tag!r} exists", fix="choose another tag")
    if (add or remove) and not backend.can(Capability.SHARED_FOLDERS):
        raise Unsupported(f"the {backend.name} backend has no shared folders", fix="share files through a bundle")
    hot = state == VMState.RUNNING and backend.can(Capability.SHARED_FOLDER_HOTPLUG)
    for tag in remove:
        if hot:
            backend.detach_shared_folder(vm_name, by_tag[tag])
        by_tag.pop(tag)
        _note(change, f"unshared {tag}", live=hot, on=state != VMState.STOPPED)
    for share in add:
        if hot:
            backend.attach_shared_folder(vm_name, share)
        by_tag[share.tag] = share
        _note(change, f"shared {share.host_path} as {share.tag}", live=hot, on=state != VMState.STOPPED)
    return spec.replace(shared_folders=tuple(by_tag.values()))


def _note(change: SettingsChange, text: str, *, live: bool, on: bool) -> None:
    change.changed.append(text)
    if live:
        change.live.append(text)
    elif on:
        change.next_boot.append(text)


def _grow_disk(
    files: ProjectFiles, project: Any, label: str, size: int, change: SettingsChange, state: VMState,
    progress: Progress,
) -> None:
    if is_native_project(project):
        raise Unsupported(f"{project.backend} keeps the disks in its own snapshots; vmlog cannot resize them",
                          fix="resize the disk with the hypervisor's own tools")
    if state != VMState.STOPPED:
        raise InvalidInput(f"the VM of {project.name!r} is {state.value}; a disk grows only while it is off",
                           fix=f"`vml down {project.name}` first")
    if label not in project.live:
        raise InvalidInput(f"project {project.name!r} has no disk {label!r}",
                           fix=f"name one of {', '.join(sorted(project.live))}")
    top = project.live[label]  # a file here, or a volume of the project's host (resized there)
    old = files.layers.capacity(top)
    if size < old:
        raise InvalidInput(f"disk {label} is {old} bytes; it can only grow", fix="give a larger size")
    if size == old:
        return
    progress(f"growing disk {label}", None)
    files.layers.resize(top, size)
    change.changed.append(f"disk {label} {old >> 20} -> {size >> 20} MiB")
