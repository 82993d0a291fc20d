"""A throw-away clone of a saved state: new overlays on its frozen layers, a VM of its own, gone afterwards.

Running a check must leave the state exactly as it was, and the project's live layer and VM alone:
every disk the clone can write is a fresh qcow2 overlay in a private directory, backed by the state's
layer (read-only to the clone's QEMU), and the clone is a separate VM under a unique name, without
port forwards (they would collide with the project's running VM). Whatever happens in the body, a
Ctrl-C included, the VM is powered off and undefined and its directory deleted.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypervisors.base import Hypervisor, SnapshotModel
from hypervisors.errors import ReportableError, Unsupported
from hypervisors.spec import DiskSpec, NicSpec, VMSpec
from vmlog.projects.layers import LayerStore
from vmlog.projects.model import State

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clone:
    """A running clone: its VM name, its spec (disks in ``work``), and where its files live."""

    vm_name: str
    spec: VMSpec
    work: Path


def require_overlay_backend(backend: Hypervisor) -> None:
    """A clone is a qcow2 overlay on vmlog's own layers: only backends that boot those can run it."""
    if backend.snapshot_model != SnapshotModel.OVERLAY_CHAIN:
        raise Unsupported(
            f"the {backend.name} backend cannot boot a throw-away clone of a state: it keeps its disks in its"
            " own snapshot tree, and a clone is a qcow2 overlay on the state's layers",
            fix="run the checks under kvm: `vml check run --backend kvm` on a project whose states are qcow2 layers",
            backend=backend.name,
        )


def clone_spec(state: State, tops: dict[str, Path], work: Path, vm_name: str, runtime: Path) -> VMSpec:
    """The clone's VM: the state's spec with every writable disk on a new overlay in ``work``.

    ``tops`` gives, per disk label, the qcow2 file showing the state's disk (its frozen layer, or a
    content layer read from a native snapshot); any other writable disk backs onto its own file, so
    nothing of the project is ever written. Network cards keep their model only (no forwards, no MAC).
    """
    spec = VMSpec.from_dict(dict(state.spec))
    overlays = LayerStore(work)
    disks: list[DiskSpec] = []
    for index, disk in enumerate(spec.disks):
        if disk.label in tops:
            backing, fmt = tops[disk.label], "qcow2"
        elif disk.device == "disk" and not disk.readonly:
            backing, fmt = disk.path, disk.format
        else:
            disks.append(disk)
            continue
        name = f"{disk.label or 'disk'}-{index}.qcow2"
        top = overlays.create_overlay(name, backing, fmt)
        disks.append(DiskSpec(path=top, format="qcow2", device="disk", readonly=False, label=disk.label))
    for label in tops:
        if not any(d.label == label for d in spec.disks):
            raise Unsupported(f"state {state.label()} has a {label} disk its VM spec does not attach")
    runtime.mkdir(parents=True, exist_ok=True)
    return spec.replace(
        name=vm_name,
        disks=tuple(disks),
        nics=tuple(NicSpec(model=nic.model) for nic in spec.nics),
        shared_folders=tuple(s for s in spec.shared_folders if s.host_path.is_dir()),
        serial_log=runtime / "serial.log",
        channel_socket=runtime / "channel.sock",
    )


def _destroy(backend: Hypervisor, vm_name: str, work: Path, runtime: Path) -> None:
    """Power off and undefine the clone, then delete its files; each step tried whatever the last did."""
    try:
        if backend.exists(vm_name):
            backend.delete(vm_name)  # powers off first
    except ReportableError as exc:
        log.warning("could not remove the check clone %s: %s", vm_name, exc.message)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(runtime, ignore_errors=True)


@contextmanager
def throwaway_clone(
    backend: Hypervisor, state: State, tops: dict[str, Path], *, work_parent: Path, vm_name: str, runtime: Path
) -> Iterator[Clone]:
    """Define and boot a clone of ``state`` as VM ``vm_name``, its disks in ``work_parent/vm_name`` (new).

    ``runtime`` is a short directory for the console log and the agent socket (Unix socket paths are
    short); it is deleted afterwards too.
    """
    require_overlay_backend(backend)
    work_parent.mkdir(parents=True, exist_ok=True)
    work = work_parent / vm_name
    work.mkdir()  # the name is new: a leftover of the same name would have been removed first
    try:
        spec = clone_spec(state, tops, work, vm_name, runtime)
        backend.define(spec)
        backend.start(vm_name)
        yield Clone(vm_name=vm_name, spec=spec, work=work)
    finally:
        _destroy(backend, vm_name, work, runtime)


def remove_leftovers(backend: Hypervisor, work_parent: Path, runtime_of: Callable[[str], Path]) -> list[str]:
    """Remove clones a killed run left behind: each directory under ``work_parent`` names its clone's VM.

    Only VMs vmlog created for a clone are touched (their names come from those directories); the
    caller holds the project's lock, so no other run is using them. The names removed.
    """
    if not work_parent.is_dir():
        return []
    removed = []
    for directory in sorted(p for p in work_parent.iterdir() if p.is_dir()):
        _destroy(backend, directory.name, directory, runtime_of(directory.name))
        removed.append(directory.name)
    return removed
