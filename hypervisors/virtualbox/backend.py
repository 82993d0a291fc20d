"""The VirtualBox backend: VMs defined from the neutral spec, VirtualBox's snapshot tree mirrored for vmlog.

Disks: every hard disk vmlog hands over is attached ``multiattach`` (``immutable`` when read-only), so
VirtualBox never writes the file vmlog gave it; it writes a differencing image of its own in the
machine's ``Snapshots`` folder. Several projects thus share one base VDI, whose UUID must stay the
same wherever it is used (a differencing VDI names its parent by UUID): :meth:`import_disk` gives a
converted base a UUID derived from its content. Runtime control uses the Main API through ``vboxapi``
when it is importable and VBoxManage otherwise (see :mod:`hypervisors.virtualbox.mainapi`).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any, ClassVar

from hypervisors import qemu_img
from hypervisors.base import Capability, Hypervisor, NativeSnapshot, Probe, SnapshotDisk, SnapshotModel, VMState
from hypervisors.errors import InvalidState, OperationTimeout, Unsupported, VMExists, VMNotFound
from hypervisors.guest import GuestAgent
from hypervisors.spec import DiskSpec, VMSpec, check_vm_name
from hypervisors.virtualbox import media
from hypervisors.virtualbox.diagnostics import BACKEND
from hypervisors.virtualbox.machinereadable import parse_info, parse_medium_info, parse_snapshot_tree, parse_vm_list
from hypervisors.virtualbox.probe import probe_virtualbox
from hypervisors.virtualbox.settings import ControlChannel, define_commands, disk_slots
from hypervisors.virtualbox.states import map_state
from hypervisors.virtualbox.vboxmanage import ProgressCallback, VBoxManage, find_vboxmanage

# Namespace of the UUIDs vmlog gives base VDIs: same content, same UUID, on every machine.
BASE_UUID_NAMESPACE = uuidlib.UUID("6f1c8a52-0d7e-4b8e-9a55-3c1f2b7d9e10")
EXTRADATA_PREFIX = "vmlog/disk/"
GUEST_USER_ENV = "VMLOG_GUEST_USER"
GUEST_PASSWORD_ENV = "VMLOG_GUEST_PASSWORD"


def base_uuid_for(digest: str) -> str:
    """The UUID a base image with this sha256 carries as a VDI."""
    return str(uuidlib.uuid5(BASE_UUID_NAMESPACE, digest))


class VirtualBoxHypervisor(Hypervisor):
    name: ClassVar[str] = "virtualbox"
    snapshot_model: ClassVar[SnapshotModel] = SnapshotModel.NATIVE_TREE
    native_disk_format: ClassVar[str] = "vdi"

    def __init__(
        self,
        machine_folder: str | Path | None = None,
        vboxmanage: str | Path | None = None,
        api: str = "auto",
        progress: ProgressCallback | None = None,
        guest_user: str | None = None,
        guest_password: str | None = None,
    ) -> None:
        """``api`` is ``auto`` (vboxapi if importable), ``vboxapi`` or ``vboxmanage``.

        ``guest_user``/``guest_password`` (default ``$VMLOG_GUEST_USER``/``$VMLOG_GUEST_PASSWORD``): the guest
        login the Guest Additions run commands and copy files as (see :mod:`guest_additions`).
        """
        self.tool = VBoxManage(find_vboxmanage(vboxmanage))
        self.guest_user = guest_user or os.environ.get(GUEST_USER_ENV) or None
        self.guest_password = guest_password if guest_password is not None else os.environ.get(GUEST_PASSWORD_ENV)
        self.machine_folder = Path(machine_folder) if machine_folder else None
        self.progress = progress
        self.control: ControlChannel = self._open_control(api)

    def _open_control(self, api: str) -> ControlChannel:
        from hypervisors.virtualbox.mainapi import open_control

        return open_control(api, self.tool, self.progress)

    @property
    def api(self) -> str:
        return self.control.api_name

    @property
    def capabilities(self) -> Capability:
        return (
            Capability.LIVE_SNAPSHOT
            | Capability.MEMORY_SAVE
            | Capability.NATIVE_SNAPSHOT_TREE
            | Capability.SHARED_FOLDERS
            | Capability.PORT_FORWARD
            | Capability.SERIAL_CHANNEL
            | Capability.ACPI_SHUTDOWN
            | Capability.SNAPSHOT_DISKS
            | Capability.GUEST_AGENT
        )

    # -- discovery ---------------------------------------------------------------------------
    def probe(self) -> Probe:
        return probe_virtualbox(self.tool.path)

    def list_vms(self) -> list[str]:
        return list(parse_vm_list(self.tool.run(["list", "vms"])))

    def _info(self, name: str) -> dict[str, str]:
        return parse_info(self.tool.run(["showvminfo", name, "--machinereadable"]))

    def _require_vm(self, name: str) -> None:
        if name not in self.list_vms():
            raise VMNotFound(f"no VirtualBox VM named {name!r}", backend=BACKEND)

    # -- lifecycle ---------------------------------------------------------------------------
    def define(self, spec: VMSpec) -> None:
        check_vm_name(spec.name)
        if spec.name in self.list_vms():
            raise VMExists(f"a VirtualBox VM named {spec.name!r} already exists", backend=BACKEND,
                           fix=f"delete it first (`VBoxManage unregistervm {spec.name} --delete`) or pick another name")
        for disk in spec.disks:
            if disk.device == "disk" and disk.format not in ("vdi", "vmdk", "raw"):
                raise Unsupported(
                    f"VirtualBox cannot attach the {disk.format} disk {disk.path}", backend=BACKEND,
                    fix="convert it first with the backend's import_disk (VDI)")
        create = ["createvm", "--name", spec.name, "--ostype", "Linux_64", "--register"]
        if self.machine_folder:
            self.machine_folder.mkdir(parents=True, exist_ok=True)
            create += ["--basefolder", str(self.machine_folder)]
        self.tool.run(create)
        try:
            for args in define_commands(spec):
                self.tool.run(args, self.progress)
            for label, slot in disk_slots(spec).items():
                self.tool.run(["setextradata", spec.name, EXTRADATA_PREFIX + label, slot])
        except Exception:
            self.tool.run_raw(["unregistervm", spec.name, "--delete"])
            raise

    def redefine(self, spec: VMSpec) -> None:
        """Settings of a stopped VM; disks change only while the VM has no snapshots (they belong to them)."""
        info = self._info(spec.name)
        if map_state(info.get("VMState", "")) not in (VMState.STOPPED, VMState.CRASHED):
            raise InvalidState(f"VM {spec.name!r} must be powered off to be redefined", backend=BACKEND,
                               fix="shut it down or discard its saved state first")
        for key, value in info.items():
            if key.startswith("Forwarding("):
                self.tool.run(["modifyvm", spec.name, "--natpf1", "delete", value.split(",")[0]])
            elif key.startswith("SharedFolderNameMachineMapping"):
                self.tool.run(["sharedfolder", "remove", spec.name, "--name", value])
        new_disks = {d.path.resolve() for d in spec.disks if d.device == "disk"}
        disks_changed = self._attached_bases(info) != new_disks
        if disks_changed and info.get("SnapshotUUID"):
            raise Unsupported(f"cannot change the disks of {spec.name!r}: its snapshots hold them",
                              backend=BACKEND)
        for args in define_commands(spec, with_storage=disks_changed, first_time=False):
            self.tool.run(args, self.progress)
        for label, slot in disk_slots(spec).items():
            self.tool.run(["setextradata", spec.name, EXTRADATA_PREFIX + label, slot])

    def _attached_bases(self, info: dict[str, str]) -> set[Path]:
        bases = set()
        for key, value in info.items():
            if key.startswith("SATA-ImageUUID-"):
                bases.add(Path(self._base_of(value)).resolve())
        return bases

    def _medium_info(self, ref: str) -> dict[str, str]:
        return parse_medium_info(self.tool.run(["showmediuminfo", "disk", ref]))

    def _base_of(self, medium_uuid: str) -> str:
        fields = self._medium_info(medium_uuid)
        while fields.get("Parent UUID", "base") != "base":
            fields = self._medium_info(fields["Parent UUID"])
        return fields["Location"]

    def delete(self, name: str) -> None:
        info = self._info(name)
        state = map_state(info.get("VMState", ""))
        if state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            self.control.poweroff(name)
        bases = {self._base_of(v) for k, v in info.items() if k.startswith("SATA-ImageUUID-")}
        self.tool.run(["unregistervm", name, "--delete"], self.progress)
        for base in bases:  # forget the base in VirtualBox's registry once nothing uses it (the file stays)
            fields = self._medium_info(base)
            if "Child UUIDs" not in fields and "In use by VMs" not in fields:
                self.tool.run_raw(["closemedium", "disk", base])

    def state(self, name: str) -> VMState:
        return self.control.state(name)

    def start(self, name: str) -> None:
        state = self.state(name)
        if state in (VMState.RUNNING, VMState.PAUSED):
            raise InvalidState(f"VM {name!r} is already running", backend=BACKEND)
        self.control.start(name)

    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        if self.state(name) == VMState.STOPPED:
            return
        self.control.power_button(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(name) in (VMState.STOPPED, VMState.CRASHED):
                return
            time.sleep(0.5)
        raise OperationTimeout(f"VM {name!r} did not power off within {timeout:.0f} s of the ACPI power button",
                               backend=BACKEND, fix="the guest may ignore ACPI: use poweroff")

    def poweroff(self, name: str) -> None:
        state = self.state(name)
        if state in (VMState.RUNNING, VMState.PAUSED, VMState.TRANSITIONING):
            self.control.poweroff(name)
        elif state == VMState.SAVED:
            self.control.discard_state(name)

    def suspend(self, name: str) -> None:
        if self.state(name) not in (VMState.RUNNING, VMState.PAUSED):
            raise InvalidState(f"VM {name!r} is not running, there is nothing to save", backend=BACKEND)
        self.control.save_state(name)

    def resume(self, name: str) -> None:
        state = self.state(name)
        if state == VMState.SAVED:
            self.control.start(name)
        elif state == VMState.PAUSED:
            self.control.resume(name)
        else:
            raise InvalidState(f"VM {name!r} is {state.value}, not saved or paused", backend=BACKEND)

    def discard_saved_state(self, name: str) -> None:
        if self.state(name) == VMState.SAVED:
            self.control.discard_state(name)

    # -- native snapshot tree ----------------------------------------------------------------
    def snapshot_create(self, name: str, snapshot_name: str, *, with_memory: bool = False) -> str:
        """A running VM's snapshot is online (VirtualBox always keeps its memory with it)."""
        del with_memory  # VirtualBox decides: online snapshots hold memory, offline ones cannot
        return self.control.take_snapshot(name, snapshot_name, live=self.state(name) == VMState.RUNNING)

    def snapshot_restore(self, name: str, snapshot_id: str) -> None:
        if self.state(name) in (VMState.RUNNING, VMState.PAUSED):
            raise InvalidState(f"VirtualBox restores snapshots of stopped or saved VMs only; {name!r} is running",
                               backend=BACKEND, fix="suspend or shut down the VM first")
        self.control.restore_snapshot(name, snapshot_id)

    def snapshot_delete(self, name: str, snapshot_id: str) -> None:
        self.control.delete_snapshot(name, snapshot_id)

    def snapshot_list(self, name: str) -> list[NativeSnapshot]:
        code, stdout, stderr = self.tool.run_raw(["snapshot", name, "list", "--machinereadable"])
        if code != 0:
            if "does not have any snapshots" in stdout + stderr:
                return []
            from hypervisors.virtualbox.diagnostics import map_error

            raise map_error("list snapshots", stderr + stdout, code)
        snapshots, _current = parse_snapshot_tree(parse_info(stdout))
        return snapshots

    def current_snapshot(self, name: str) -> str | None:
        return parse_info(self.tool.run(["showvminfo", name, "--machinereadable"])).get("CurrentSnapshotUUID")

    # -- disks -------------------------------------------------------------------------------
    def _labels(self, name: str) -> dict[str, str]:
        out = self.tool.run(["getextradata", name, "enumerate"])
        labels = {}
        for line in out.splitlines():
            if line.startswith("Key: ") and ", Value: " in line:
                key, value = line[5:].split(", Value: ", 1)
                if key.startswith(EXTRADATA_PREFIX):
                    labels[key[len(EXTRADATA_PREFIX):]] = value
        return labels

    def _top_medium(self, name: str, label: str) -> tuple[str, str]:
        """(medium UUID, location) the disk labelled ``label`` writes into now."""
        slot = self._labels(name).get(label)
        if slot is None:
            raise KeyError(label)
        ctl, port, device = slot.split(":")
        info = self._info(name)
        return info[f"{ctl}-ImageUUID-{port}-{device}"], info[f"{ctl}-{port}-{device}"]

    def disk_tops(self, name: str) -> dict[str, Path]:
        return {label: Path(self._top_medium(name, label)[1]) for label in self._labels(name)}

    def top_has_data(self, path: Path) -> bool:
        """Whether a current differencing image (``Snapshots/{uuid}.vdi``) holds unsaved writes, from its header."""
        return media.top_has_data(Path(path))

    def export_disk(self, name: str, label: str, dest: Path, fmt: str = "qcow2") -> Path:
        """Flatten the disk's chain with VirtualBox's own ``clonemedium`` (a full, standalone VDI)."""
        if self.state(name) in (VMState.RUNNING, VMState.PAUSED):
            raise InvalidState(f"cannot export a disk of the running VM {name!r}", backend=BACKEND,
                               fix="suspend or shut down the VM first")
        medium, _location = self._top_medium(name, label)
        return self._clone_flat(medium, Path(dest), fmt)

    def export_snapshot_disk(self, name: str, snapshot_id: str, label: str, dest: Path, fmt: str = "qcow2") -> Path:
        """Flatten the disk ``label`` as snapshot ``snapshot_id`` froze it, without restoring anything.

        VBoxManage names a snapshot's media only in human-readable output, so the medium is found by
        the documented shape of the tree (manual 5.3 and 1.10): taking or restoring a snapshot attaches
        a new differencing image on the snapshot's own, and deleting one merges its image into its
        single child. The current image's k-th parent is thus the image of the current snapshot's
        (k-1)-th ancestor. Snapshots off that path are refused: restore onto them first.
        """
        snapshots = {s.id: s for s in self.snapshot_list(name)}
        path: list[str] = []
        node = self.current_snapshot(name)
        while node:
            path.append(node)
            node = snapshots[node].parent_id if node in snapshots else None
        if snapshot_id not in path:
            raise Unsupported(
                f"VirtualBox snapshot {snapshot_id} of {name!r} is not on the path of the current state",
                backend=BACKEND, fix="restore that snapshot (or one of its descendants) first, then export")
        medium, _location = self._top_medium(name, label)
        for _hop in range(path.index(snapshot_id) + 1):
            medium = self._medium_info(medium)["Parent UUID"]
        return self._clone_flat(medium, Path(dest), fmt)

    def snapshot_disks(self, vm_name: str, snapshot_id: str, work_dir: Path) -> dict[str, SnapshotDisk]:
        """Each labelled disk as the snapshot froze it, flattened by VirtualBox into a standalone VDI in ``work_dir``.

        qemu-img cannot follow a chain of differencing VDIs, so VirtualBox's own ``clonemedium`` makes
        the copy (see :meth:`export_snapshot_disk`); the caller deletes the files.
        """
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        disks: dict[str, SnapshotDisk] = {}
        for label in sorted(self._labels(vm_name)):
            dest = work_dir / f"{snapshot_id}-{label}.vdi"
            self.export_snapshot_disk(vm_name, snapshot_id, label, dest, "vdi")
            disks[label] = SnapshotDisk(path=dest, format="vdi", flattened=True)
        return disks

    def _clone_flat(self, medium: str, dest: Path, fmt: str) -> Path:
        flat = dest if fmt == "vdi" else dest.with_name(dest.name + ".flat.vdi")
        out = self.tool.run(["clonemedium", "disk", medium, str(flat), "--format", "VDI"], self.progress)
        clone_uuid = out.strip().rsplit("UUID: ", 1)[-1].strip()
        try:
            if fmt != "vdi":
                qemu_img.convert(flat, dest, src_format="vdi", dest_format=fmt)
        finally:
            if fmt != "vdi":
                self.tool.run_raw(["closemedium", "disk", clone_uuid, "--delete"])
                flat.unlink(missing_ok=True)
            else:
                self.tool.run_raw(["closemedium", "disk", clone_uuid])
        return dest

    def load_disk(self, name: str, label: str, src: Path, src_format: str) -> None:
        """Make disk ``label`` of the stopped VM show exactly ``src``'s content (a qemu-readable chain).

        VirtualBox alone writes its differencing images (qemu-img cannot), so ``src`` is converted to
        a standalone VDI and VirtualBox copies it into the VM's current differencing image with
        ``clonemedium --existing``; the shared base keeps its UUID and is never written. The copy
        holds every allocated block of ``src``: VBoxManage has no way to copy only the blocks that
        differ from the parent.
        """
        if self.state(name) not in (VMState.STOPPED, VMState.CRASHED):
            raise InvalidState(f"cannot load a disk into {name!r} while it is {self.state(name).value}",
                               backend=BACKEND, fix="power the VM off (and discard its saved state) first")
        medium, location = self._top_medium(name, label)
        flat = Path(location).parent / f"vmlog-load-{uuidlib.uuid4().hex[:12]}.vdi"
        qemu_img.convert(Path(src), flat, src_format=src_format, dest_format="vdi")
        try:
            self.tool.run(["clonemedium", "disk", str(flat), medium, "--existing"], self.progress)
        finally:
            self.tool.run_raw(["closemedium", "disk", str(flat), "--delete"])
            flat.unlink(missing_ok=True)

    def import_disk(self, src: Path, src_format: str, dest: Path) -> DiskSpec:
        """Convert to VDI and give it the UUID its content determines, so every copy of a base agrees."""
        digest = _sha256(Path(src))
        qemu_img.convert(Path(src), Path(dest), src_format=src_format, dest_format="vdi")
        self.tool.run(["internalcommands", "sethduuid", str(dest), base_uuid_for(digest)])
        return DiskSpec(path=Path(dest), format="vdi")

    def guest_agent(self, vm_name: str) -> GuestAgent:
        """The Guest Additions of the VM (``VMNotFound`` for an unknown one); ``ping`` says whether they run."""
        from hypervisors.virtualbox.guest_additions import GuestAdditions

        self._require_vm(vm_name)
        return GuestAdditions(self.tool, vm_name, username=self.guest_user, password=self.guest_password)

    def machine_settings(self, name: str) -> dict[str, Any]:
        """The machine's settings as VirtualBox reports them (``showvminfo --machinereadable``)."""
        return dict(self._info(name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
