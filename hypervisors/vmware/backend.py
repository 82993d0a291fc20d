"""The VMware backend: a directory per VM with an authored ``.vmx``, linked to the shared base by delta VMDKs.

A VM's hard disk is a delta VMDK whose ``parentCID`` points at the base VMDK vmlog hands over (a
linked clone); VMware writes only into deltas, and a delta chain breaks if its base is ever written,
so the base is opened read-only by everyone. Snapshots go through ``vmrun`` (vmrest has no snapshot
endpoints); the tree is read from the ``.vmsd`` file, whose ``uid`` values are the immutable ids.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import ClassVar

from hypervisors import qemu_img
from hypervisors.base import Capability, Hypervisor, NativeSnapshot, Probe, SnapshotDisk, SnapshotModel, VMState
from hypervisors.errors import InvalidState, OperationFailed, OperationTimeout, Unsupported, VMExists, VMNotFound
from hypervisors.guest import GuestAgent
from hypervisors.spec import DiskSpec, VMSpec, check_vm_name
from hypervisors.vmware import vmsd, vmx
from hypervisors.vmware.vmrun import BACKEND, INSTALL_FIX, Vmrun, find_vmrun

GUEST_USER_ENV = "VMLOG_GUEST_USER"
GUEST_PASSWORD_ENV = "VMLOG_GUEST_PASSWORD"


class VMwareHypervisor(Hypervisor):
    name: ClassVar[str] = "vmware"
    snapshot_model: ClassVar[SnapshotModel] = SnapshotModel.NATIVE_TREE
    native_disk_format: ClassVar[str] = "vmdk"

    def __init__(self, vm_root: str | Path | None = None, vmrun: str | Path | None = None,
                 host_type: str | None = None, guest_user: str | None = None,
                 guest_password: str | None = None) -> None:
        """``guest_user``/``guest_password`` (default ``$VMLOG_GUEST_USER``/``$VMLOG_GUEST_PASSWORD``): the guest
        login VMware Tools run programs and copy files as (see :mod:`hypervisors.vmware.tools`)."""
        self.tool = Vmrun(find_vmrun(vmrun), host_type or ("fusion" if os.uname().sysname == "Darwin" else "ws"))
        self.vm_root = Path(vm_root) if vm_root else Path.home() / "vmware" / "vmlog"
        self.guest_user = guest_user or os.environ.get(GUEST_USER_ENV) or None
        self.guest_password = guest_password if guest_password is not None else os.environ.get(GUEST_PASSWORD_ENV)

    @property
    def capabilities(self) -> Capability:
        # No PORT_FORWARD: VMware's NAT forwards live in the host-wide vmnet8 nat.conf, not in a VM.
        return (Capability.LIVE_SNAPSHOT | Capability.MEMORY_SAVE | Capability.NATIVE_SNAPSHOT_TREE
                | Capability.SHARED_FOLDERS | Capability.SERIAL_CHANNEL | Capability.ACPI_SHUTDOWN
                | Capability.SNAPSHOT_DISKS | Capability.GUEST_AGENT)

    # -- paths -------------------------------------------------------------------------------
    def vmx_path(self, name: str) -> Path:
        return self.vm_root / name / f"{name}.vmx"

    def _existing_vmx(self, name: str) -> Path:
        path = self.vmx_path(name)
        if not path.exists():
            raise VMNotFound(f"no VMware VM named {name!r} under {self.vm_root}", backend=BACKEND)
        return path

    # -- discovery ---------------------------------------------------------------------------
    def probe(self) -> Probe:
        version = self.tool.version()
        details = {"vmrun": str(self.tool.path), "host type": self.tool.host_type, "version": version or "unknown",
                   "VMs": str(self.vm_root)}
        if version is None:
            return Probe(BACKEND, False, f"{self.tool.path} does not look like VMware's vmrun", fix=INSTALL_FIX,
                         details=details)
        try:
            self.tool.running()
        except Exception as exc:  # noqa: BLE001 - a probe never raises
            return Probe(BACKEND, False, f"vmrun list failed: {exc}", fix=INSTALL_FIX, details=details)
        return Probe(BACKEND, True, f"VMware vmrun {version} ({self.tool.host_type})", details=details)

    def list_vms(self) -> list[str]:
        if not self.vm_root.is_dir():
            return []
        return sorted(d.name for d in self.vm_root.iterdir() if (d / f"{d.name}.vmx").exists())

    # -- lifecycle ---------------------------------------------------------------------------
    def _disk_files(self, spec: VMSpec, vmdir: Path) -> dict[str, str]:
        files = {}
        for disk in spec.disks:
            if disk.device != "disk":
                continue
            if disk.format != "vmdk":
                raise Unsupported(f"VMware cannot link a clone to the {disk.format} disk {disk.path}",
                                  backend=BACKEND, fix="convert the base to VMDK first (the backend's import_disk)")
            key = disk.label or str(disk.path)
            delta = vmdir / f"{spec.name}-{disk.label or 'disk'}.vmdk"
            # a linked clone: VMware writes the delta, the base stays untouched (its CID must not change)
            rel = os.path.relpath(Path(disk.path).resolve(), vmdir)
            qemu_img.run(["create", "-q", "-f", "vmdk", "-b", rel, "-F", "vmdk", delta.name], cwd=vmdir)
            files[key] = delta.name
        return files

    def define(self, spec: VMSpec) -> None:
        check_vm_name(spec.name)
        if any(n.forwards for n in spec.nics):
            raise Unsupported("VMware has no per-VM NAT port forwards", backend=BACKEND,
                              fix="add the forward to VMware's vmnet8 nat.conf, or use the virtualbox or kvm backend")
        vmdir = self.vm_root / spec.name
        if self.vmx_path(spec.name).exists():
            raise VMExists(f"a VMware VM named {spec.name!r} already exists in {vmdir}", backend=BACKEND)
        vmdir.mkdir(parents=True, exist_ok=True)
        try:
            values = vmx.spec_to_vmx(spec, self._disk_files(spec, vmdir))
            vmx.write(self.vmx_path(spec.name), values)
        except Exception:
            shutil.rmtree(vmdir, ignore_errors=True)
            raise

    def redefine(self, spec: VMSpec) -> None:
        path = self._existing_vmx(spec.name)
        if self.state(spec.name) != VMState.STOPPED:
            raise InvalidState(f"VM {spec.name!r} must be powered off to be redefined", backend=BACKEND)
        old = vmx.read(path)
        disk_files = {label: old[f"{device}.fileName"] for label, device in vmx.disk_labels(old).items()}
        wanted = {d.label for d in spec.disks if d.device == "disk"}
        if wanted != set(disk_files):
            raise Unsupported(f"cannot change which disks {spec.name!r} has: its snapshots hold them", backend=BACKEND)
        values = vmx.spec_to_vmx(spec, disk_files)
        vmx.write(path, values)

    def delete(self, name: str) -> None:
        path = self._existing_vmx(name)
        if self.state(name) in (VMState.RUNNING, VMState.PAUSED):
            self.tool.run(["stop", str(path), "hard"])
        self.tool.run_raw(["deleteVM", str(path)])
        shutil.rmtree(path.parent, ignore_errors=True)

    def state(self, name: str) -> VMState:
        path = self._existing_vmx(name)
        if path.resolve() in {p.resolve() for p in self.tool.running()}:
            return VMState.RUNNING
        checkpoint = vmx.read(path).get("checkpoint.vmState")
        if checkpoint and (path.parent / checkpoint).exists():
            return VMState.SAVED
        return VMState.STOPPED

    def start(self, name: str) -> None:
        path = self._existing_vmx(name)
        if self.state(name) == VMState.RUNNING:
            raise InvalidState(f"VM {name!r} is already running", backend=BACKEND)
        self.tool.run(["start", str(path), "nogui"])

    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        if self.state(name) != VMState.RUNNING:
            return
        path = self._existing_vmx(name)
        code, output = self.tool.run_raw(["stop", str(path), "soft"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(name) == VMState.STOPPED:
                return
            time.sleep(0.5)
        raise OperationTimeout(f"VM {name!r} did not shut down within {timeout:.0f} s ({output.strip() or code})",
                               backend=BACKEND, fix="the guest may ignore the request: use poweroff")

    def poweroff(self, name: str) -> None:
        path = self._existing_vmx(name)
        state = self.state(name)
        if state == VMState.RUNNING:
            self.tool.run(["stop", str(path), "hard"])
        elif state == VMState.SAVED:
            self.discard_saved_state(name)

    def suspend(self, name: str) -> None:
        if self.state(name) != VMState.RUNNING:
            raise InvalidState(f"VM {name!r} is not running, there is nothing to suspend", backend=BACKEND)
        self.tool.run(["suspend", str(self._existing_vmx(name)), "hard"])

    def resume(self, name: str) -> None:
        if self.state(name) != VMState.SAVED:
            raise InvalidState(f"VM {name!r} is not suspended", backend=BACKEND)
        self.start(name)

    def discard_saved_state(self, name: str) -> None:
        path = self._existing_vmx(name)
        values = vmx.read(path)
        checkpoint = values.pop("checkpoint.vmState", None)
        if checkpoint:
            (path.parent / checkpoint).unlink(missing_ok=True)
            vmx.write(path, values)

    # -- native snapshot tree ----------------------------------------------------------------
    def _tree(self, name: str) -> tuple[dict[str, vmsd.SnapshotNode], str | None]:
        return vmsd.read_tree(self._existing_vmx(name).with_suffix(".vmsd"))

    def _vmrun_name(self, name: str, uid: str) -> str:
        nodes, _ = self._tree(name)
        if uid not in nodes:
            raise OperationFailed(f"VM {name!r} has no snapshot with uid {uid}", backend=BACKEND)
        if vmsd.is_ambiguous(nodes, uid):
            raise OperationFailed(
                f"snapshot path {vmsd.path_of(nodes, uid)!r} of {name!r} names more than one snapshot",
                backend=BACKEND, fix="rename one of the sibling snapshots in VMware so their names differ")
        return vmsd.path_of(nodes, uid)

    def snapshot_create(self, name: str, snapshot_name: str, *, with_memory: bool = False) -> str:
        """Sibling names are made unique, since vmrun addresses snapshots by their ``a/b/c`` path."""
        del with_memory  # VMware keeps a running VM's memory with its snapshot
        nodes, current = self._tree(name)
        unique = vmsd.unique_child_name(nodes, current, snapshot_name)
        self.tool.run(["snapshot", str(self._existing_vmx(name)), unique])
        after, new_current = self._tree(name)
        created = set(after) - set(nodes)
        if len(created) != 1:
            raise OperationFailed(f"vmrun took snapshot {unique!r} of {name!r} but the .vmsd does not show it",
                                  backend=BACKEND)
        return created.pop()

    def snapshot_restore(self, name: str, snapshot_id: str) -> None:
        if self.state(name) == VMState.RUNNING:
            raise InvalidState(f"{name!r} is running; vmlog restores states of stopped or suspended VMs",
                               backend=BACKEND, fix="suspend or shut down the VM first")
        self.discard_saved_state(name)
        self.tool.run(["revertToSnapshot", str(self._existing_vmx(name)), self._vmrun_name(name, snapshot_id)])

    def snapshot_delete(self, name: str, snapshot_id: str) -> None:
        self.tool.run(["deleteSnapshot", str(self._existing_vmx(name)), self._vmrun_name(name, snapshot_id)])

    def snapshot_list(self, name: str) -> list[NativeSnapshot]:
        nodes, _ = self._tree(name)
        ordered: list[NativeSnapshot] = []
        pending = [n for n in nodes.values() if n.parent is None]
        while pending:
            node = pending.pop(0)
            ordered.append(NativeSnapshot(id=node.uid, name=node.name, parent_id=node.parent,
                                          has_memory=node.memory_file is not None))
            pending += [n for n in nodes.values() if n.parent == node.uid]
        return ordered

    def snapshot_disks(self, vm_name: str, snapshot_id: str, work_dir: Path) -> dict[str, SnapshotDisk]:
        """The delta VMDKs the snapshot froze (``.vmsd`` ``diskM.fileName``), in place: VMware never writes them
        again and qemu-img follows their ``parentFileNameHint`` chain, so nothing is copied into ``work_dir``.
        """
        del work_dir
        path = self._existing_vmx(vm_name)
        nodes, _current = self._tree(vm_name)
        if snapshot_id not in nodes:
            raise OperationFailed(f"VM {vm_name!r} has no snapshot with uid {snapshot_id}", backend=BACKEND,
                                  fix="list the VM's snapshots again: it may have been deleted in VMware")
        labels = {device: label for label, device in vmx.disk_labels(vmx.read(path)).items()}
        return {labels[device]: SnapshotDisk(path=path.parent / file, format="vmdk", flattened=False)
                for device, file in nodes[snapshot_id].disk_nodes if device in labels}

    # -- disks -------------------------------------------------------------------------------
    def disk_tops(self, name: str) -> dict[str, Path]:
        path = self._existing_vmx(name)
        values = vmx.read(path)
        return {label: path.parent / values[f"{device}.fileName"] for label, device in vmx.disk_labels(values).items()}

    def export_disk(self, name: str, label: str, dest: Path, fmt: str = "qcow2") -> Path:
        """Flatten the delta chain (qemu-img follows ``parentFileNameHint``/``parentCID`` itself)."""
        if self.state(name) == VMState.RUNNING:
            raise InvalidState(f"cannot export a disk of the running VM {name!r}", backend=BACKEND,
                               fix="suspend or shut down the VM first")
        top = self.disk_tops(name)[label]
        qemu_img.convert(top, Path(dest), src_format="vmdk", dest_format=fmt)
        return Path(dest)

    def import_disk(self, src: Path, src_format: str, dest: Path) -> DiskSpec:
        """A monolithic sparse VMDK (what Workstation, Player and Fusion all open) on an lsilogic adapter."""
        qemu_img.convert(Path(src), Path(dest), src_format=src_format, dest_format="vmdk",
                         options={"subformat": "monolithicSparse", "adapter_type": "lsilogic"})
        return DiskSpec(path=Path(dest), format="vmdk")

    def import_delta(self, delta: Path, delta_format: str, base: Path, dest: Path) -> DiskSpec:
        """Write a portable delta (on the same base content) as a delta VMDK on the base VMDK ``base``."""
        rel = os.path.relpath(Path(base).resolve(), Path(dest).resolve().parent)
        qemu_img.run(["convert", "-q", "-f", delta_format, "-O", "vmdk", "-B", rel, "-F", "vmdk",
                      str(Path(delta).resolve()), Path(dest).name], cwd=Path(dest).resolve().parent)
        return DiskSpec(path=Path(dest), format="vmdk")

    # -- the guest's standard agent ------------------------------------------------------------
    def guest_agent(self, vm_name: str) -> GuestAgent:
        """VMware Tools in the VM (``VMNotFound`` for an unknown one); ``ping`` says whether they run."""
        from hypervisors.vmware.tools import VMwareTools

        return VMwareTools(self.tool, self._existing_vmx(vm_name), username=self.guest_user,
                           password=self.guest_password)
