"""The simulated VirtualBox service (VBoxSVC): machines, media and snapshots kept on disk, shared by both fronts.

``VBoxManage`` (vboxmanage.py) and the ``vboxapi`` binding (pythonpath/vboxapi) are two clients of one
registry, as on a real host where both talk to VBoxSVC. The registry is ``$VBOX_SIM_HOME/registry.json``,
locked with ``flock`` for every command.

Semantics follow the VirtualBox manual (https://www.virtualbox.org/manual/, chapter 5 "Virtual Storage":
5.3 differencing images, 5.4 "Special Image Write Modes" for multiattach/immutable; chapter 1.10
"Snapshots"; chapter 8 "VBoxManage"):

* attaching a base with ``--mtype multiattach`` marks the base multiattach and attaches a new
  differencing image (in the machine's ``Snapshots`` folder) that receives the VM's writes;
* taking a snapshot freezes each current differencing image and attaches a new one on top of it;
  a snapshot of a running VM also saves the memory state unless ``--live`` is given, in which case
  the VM keeps running while the memory state is saved (both kinds are "online" snapshots);
* restoring needs a VM that is not running; it discards the current differencing images and creates
  new ones on the snapshot's images; an online snapshot brings the machine to "saved";
* deleting a snapshot merges its images into their single child (an image with two children cannot
  be merged: VBOX_E_INVALID_OBJECT_STATE).

Real disks: base media are real files (VDI made by ``qemu-img`` has a real header whose UUID is the
medium UUID). A differencing image is named as VirtualBox names it, after the format of its chain's
base (``Snapshots/{uuid}.vdi`` on a VDI, ``.vmdk`` on a VMDK; VDI for bases of other formats), and
listed in that format. qemu-img cannot write differencing VDIs, so its content is a qcow2 file
backed by its parent (the one thing that differs from VirtualBox); the machine boots it under QEMU.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simulators.qemu_vm import BootSpec, DriveSpec, QemuVM

VERSION = os.environ.get("VBOX_SIM_VERSION", "7.0.20r163906")

# VDI header: the image UUID sits at 0x188 (VirtualBox's VDIHEADER1, also qemu's block/vdi.c),
# stored in little-endian GUID layout.
VDI_SIGNATURE_OFFSET = 0x40
VDI_SIGNATURE = 0xBEDA107F
VDI_UUID_IMAGE_OFFSET = 0x188

QEMU_FORMAT = {"VDI": "vdi", "VMDK": "vmdk", "RAW": "raw", "VHD": "vpc", "qcow2-diff": "qcow2"}


class VBoxError(Exception):
    """An error as VBoxManage prints it: message, result code name and hex, component, interface."""

    def __init__(self, message: str, code: str = "VBOX_E_INVALID_OBJECT_STATE", hexcode: str = "0x80bb0007",
                 component: str = "MachineWrap", interface: str = "IMachine", context: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hexcode = hexcode
        self.component = component
        self.interface = interface
        self.context = context


def not_found(what: str, interface: str = "IVirtualBox") -> VBoxError:
    return VBoxError(what, "VBOX_E_OBJECT_NOT_FOUND", "0x80bb0001", "VirtualBoxWrap", interface)


def home() -> Path:
    root = Path(os.environ.get("VBOX_SIM_HOME", Path.home() / ".vbox-sim"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def read_vdi_uuid(path: Path) -> str | None:
    with open(path, "rb") as f:
        f.seek(VDI_SIGNATURE_OFFSET)
        sig = int.from_bytes(f.read(4), "little")
        if sig != VDI_SIGNATURE:
            return None
        f.seek(VDI_UUID_IMAGE_OFFSET)
        return str(uuidlib.UUID(bytes_le=f.read(16)))


def write_vdi_uuid(path: Path, value: str) -> None:
    with open(path, "r+b") as f:
        f.seek(VDI_SIGNATURE_OFFSET)
        if int.from_bytes(f.read(4), "little") != VDI_SIGNATURE:
            raise VBoxError(f"Format error in '{path}' (VERR_VD_VDI_INVALID_HEADER)", "NS_ERROR_FAILURE",
                            "0x80004005", "", "")
        f.seek(VDI_UUID_IMAGE_OFFSET)
        f.write(uuidlib.UUID(value).bytes_le)


def qemu_img(*args: str) -> str:
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise VBoxError(f"Could not process the image: {proc.stderr.strip()}", "NS_ERROR_FAILURE", "0x80004005",
                        "MediumWrap", "IMedium")
    return proc.stdout


class Registry:
    """The whole simulated VirtualBox state; mutate inside ``with Registry.open() as reg``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.machines: dict[str, dict[str, Any]] = data.setdefault("machines", {})
        self.media: dict[str, dict[str, Any]] = data.setdefault("media", {})

    @classmethod
    @contextlib.contextmanager
    def open(cls) -> Iterator[Registry]:
        root = home()
        lock = open(root / "registry.lock", "w")  # noqa: SIM115 - held for the whole block
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            path = root / "registry.json"
            data = json.loads(path.read_text()) if path.exists() else {}
            reg = cls(data)
            reg.refresh_runtime()
            yield reg
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(reg.data, indent=1, sort_keys=True))
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    # -- lookups ---------------------------------------------------------------------------------
    def find_machine(self, name_or_uuid: str) -> dict[str, Any]:
        for m in self.machines.values():
            if m["uuid"] == name_or_uuid.strip("{}") or m["name"] == name_or_uuid:
                return m
        raise VBoxError(
            f"Could not find a registered machine named '{name_or_uuid}'",
            "VBOX_E_OBJECT_NOT_FOUND", "0x80bb0001", "VirtualBoxWrap", "IVirtualBox",
            'FindMachine(Bstr(VMNameOrUuid).raw(), machine.asOutParam())',
        )

    def qemu(self, m: dict[str, Any]) -> QemuVM:
        return QemuVM(Path(m["folder"]) / ".sim-run")

    def refresh_runtime(self) -> None:
        """A machine whose QEMU is gone has been powered off by its guest (or crashed)."""
        for m in self.machines.values():
            if m["state"] in ("running", "paused") and not self.qemu(m).alive():
                m["state"] = "poweroff"

    def medium(self, ref: str) -> dict[str, Any]:
        key = ref.strip("{}")
        if key in self.media:
            return self.media[key]
        path = str(Path(ref).resolve())
        for med in self.media.values():
            if med["location"] == path:
                return med
        raise not_found(f"Could not find file for the medium '{path}' (VERR_FILE_NOT_FOUND)")

    def open_medium(self, location: str) -> dict[str, Any]:
        """Register a base medium file (as ``openMedium`` does on first use) and return it."""
        path = Path(location).resolve()
        for med in self.media.values():
            if med["location"] == str(path):
                return med
        if not path.is_file():
            raise VBoxError(
                f"Could not find file for the medium '{path}' (VERR_FILE_NOT_FOUND)",
                "VBOX_E_FILE_ERROR", "0x80bb0004", "MediumWrap", "IMedium")
        suffix = path.suffix.lower()
        fmt = {".vdi": "VDI", ".vmdk": "VMDK", ".vhd": "VHD", ".img": "RAW", ".raw": "RAW", ".iso": "RAW"}.get(
            suffix)
        if fmt is None:
            raise VBoxError(
                f"Could not get the storage format of the medium '{path}' (VERR_NOT_SUPPORTED)",
                "VBOX_E_IPRT_ERROR", "0x80bb0005", "MediumWrap", "IMedium")
        med_uuid = read_vdi_uuid(path) if fmt == "VDI" else None
        if med_uuid is None:
            med_uuid = str(uuidlib.uuid4())
        if med_uuid in self.media:
            other = self.media[med_uuid]["location"]
            raise VBoxError(
                f"Cannot register the hard disk '{path}' {{{med_uuid}}} because a hard disk '{other}' with "
                f"UUID {{{med_uuid}}} already exists", "NS_ERROR_INVALID_ARG", "0x80070057",
                "VirtualBoxWrap", "IVirtualBox")
        info = json.loads(qemu_img("info", "--output=json", "-f", QEMU_FORMAT[fmt], str(path)))
        med = {"uuid": med_uuid, "location": str(path), "format": fmt, "parent": None, "type": "normal",
               "capacity": info["virtual-size"], "device": "DVD" if suffix == ".iso" else "HardDisk"}
        self.media[med_uuid] = med
        return med

    def children(self, med_uuid: str) -> list[dict[str, Any]]:
        return [m for m in self.media.values() if m["parent"] == med_uuid]

    def chain_format(self, med: dict[str, Any]) -> str:
        return QEMU_FORMAT[med["format"]]

    def storage_format(self, med: dict[str, Any]) -> str:
        """The format VirtualBox reports for a medium (a differencing image: its base's format)."""
        return str(med.get("storage_format") or med["format"])

    def diff_storage_format(self, parent: dict[str, Any]) -> str:
        base = parent
        while base["parent"]:
            base = self.media[base["parent"]]
        return base["format"] if base["format"] in ("VDI", "VMDK", "VHD") else "VDI"

    def create_diff(self, parent: dict[str, Any], folder: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        med_uuid = str(uuidlib.uuid4())
        storage_format = self.diff_storage_format(parent)
        path = folder / f"{{{med_uuid}}}.{storage_format.lower()}"
        rel = os.path.relpath(parent["location"], folder)
        qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", rel,
                 "-F", self.chain_format(parent), "-u", str(path), str(parent["capacity"]))
        med = {"uuid": med_uuid, "location": str(path), "format": "qcow2-diff", "storage_format": storage_format,
               "parent": parent["uuid"], "type": "normal", "capacity": parent["capacity"], "device": "HardDisk"}
        self.media[med_uuid] = med
        return med

    def drop_medium(self, med_uuid: str) -> None:
        med = self.media.pop(med_uuid)
        Path(med["location"]).unlink(missing_ok=True)

    # -- machines --------------------------------------------------------------------------------
    def create_machine(self, name: str, basefolder: Path, ostype: str) -> dict[str, Any]:
        if any(m["name"] == name for m in self.machines.values()):
            raise VBoxError(
                f"Machine settings file '{basefolder / name / (name + '.vbox')}' already exists",
                "VBOX_E_FILE_ERROR", "0x80bb0004", "MachineWrap", "IMachine")
        folder = basefolder / name
        folder.mkdir(parents=True, exist_ok=True)
        machine = {
            "uuid": str(uuidlib.uuid4()), "name": name, "ostype": ostype, "folder": str(folder),
            "settings_file": str(folder / f"{name}.vbox"), "memory": 128, "cpus": 1, "firmware": "bios",
            "state": "poweroff", "state_file": None, "nics": {"1": {"type": "nat", "nictype": "82540EM",
                                                                      "forwards": {}}},
            "uarts": {}, "controllers": {}, "attachments": {}, "shared_folders": {}, "snapshots": {},
            "current_snapshot": None, "extra": {}, "description": "",
        }
        self.machines[machine["uuid"]] = machine
        self.write_settings(machine)
        return machine

    def write_settings(self, m: dict[str, Any]) -> None:
        Path(m["settings_file"]).write_text(json.dumps(m, indent=1, sort_keys=True))

    def attachment_media(self, m: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(slot, self.media[a["medium"]]) for slot, a in sorted(m["attachments"].items())
                if a["type"] == "hdd" and a.get("medium")]

    def boot(self, m: dict[str, Any], incoming: Path | None = None) -> None:
        drives = []
        for slot, a in sorted(m["attachments"].items()):
            if not a.get("medium"):
                continue
            med = self.media[a["medium"]]
            ctl, port, device = slot.split(":")
            if a["type"] == "dvddrive" and m["controllers"].get(ctl, {}).get("bus") == "ide":
                drives.append(DriveSpec(Path(med["location"]), "raw", readonly=True, bus="ide",
                                        ide_index=int(port) * 2 + int(device)))
            else:
                drives.append(DriveSpec(Path(med["location"]), self.chain_format(med),
                                        readonly=a["type"] == "dvddrive"))
        serial_log = channel = None
        for port, uart in sorted(m["uarts"].items()):
            if uart["mode"] == "file" and port == "1":
                serial_log = Path(uart["path"])
            if uart["mode"] == "server" and port == "2":
                channel = Path(uart["path"])
        forwards = []
        for nic in m["nics"].values():
            for rule in nic["forwards"].values():
                forwards.append((rule["proto"], rule["host_ip"] or "0.0.0.0", rule["host_port"],
                                 rule["guest_port"]))
        self.qemu(m).boot(BootSpec(m["memory"], m["cpus"], drives, serial_log, channel, forwards, incoming))

    def snapshot_children(self, m: dict[str, Any], snap_uuid: str | None) -> list[dict[str, Any]]:
        return [s for s in m["snapshots"].values() if s["parent"] == snap_uuid]

    def find_snapshot(self, m: dict[str, Any], ref: str) -> dict[str, Any]:
        key = ref.strip("{}")
        if key in m["snapshots"]:
            return m["snapshots"][key]
        for s in m["snapshots"].values():  # by name: the first match, as FindSnapshot does
            if s["name"] == ref:
                return s
        raise VBoxError(
            f"Could not find a snapshot named '{ref}'", "VBOX_E_OBJECT_NOT_FOUND", "0x80bb0001",
            "MachineWrap", "IMachine")

    def delete_machine_files(self, m: dict[str, Any]) -> None:
        for slot, med in self.attachment_media(m):
            del slot
            if med["format"] == "qcow2-diff":
                self.drop_medium(med["uuid"])
        for s in m["snapshots"].values():
            for med_uuid in s["media"].values():
                if med_uuid in self.media and self.media[med_uuid]["format"] == "qcow2-diff":
                    self.drop_medium(med_uuid)
        shutil.rmtree(m["folder"], ignore_errors=True)
