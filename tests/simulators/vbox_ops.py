"""Machine operations of the simulated VirtualBox service, shared by the VBoxManage and vboxapi fronts.

Each function takes the open registry and a machine record and enforces the state rules of the
VirtualBox Main API (IMachine/IConsole/ISnapshot, https://www.virtualbox.org/sdkref/), raising
:class:`VBoxError` with the result codes the API documents.
"""

from __future__ import annotations

import datetime
import os
import uuid as uuidlib
from pathlib import Path
from typing import Any

from simulators.vbox_model import Registry, VBoxError, qemu_img

STATE_NAMES = {  # the MachineState enum's display names, used in Main's error texts
    "poweroff": "PoweredOff", "running": "Running", "paused": "Paused", "saved": "Saved",
    "aborted": "Aborted",
}


def invalid_state(m: dict[str, Any], what: str) -> VBoxError:
    return VBoxError(
        f"Invalid machine state: {STATE_NAMES.get(m['state'], m['state'])} (must be {what})",
        "VBOX_E_INVALID_VM_STATE", "0x80bb0002", "MachineWrap", "IMachine")


def require_mutable(m: dict[str, Any]) -> None:
    if m["state"] not in ("poweroff", "aborted"):
        raise VBoxError(
            f"The machine is not mutable (state is {STATE_NAMES.get(m['state'], m['state'])})",
            "VBOX_E_INVALID_VM_STATE", "0x80bb0002", "SessionMachine", "IMachine")


def start(reg: Registry, m: dict[str, Any]) -> None:
    if m["state"] in ("running", "paused"):
        raise VBoxError(
            f"The machine '{m['name']}' is already locked by a session (or being locked or unlocked)",
            "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MachineWrap", "IMachine")
    if os.environ.get("VBOX_SIM_FAULT") == "vboxdrv":
        raise VBoxError(
            "The virtual machine 'x' has terminated unexpectedly during startup with exit code 1 (0x1)."
            .replace("'x'", f"'{m['name']}'"),
            "NS_ERROR_FAILURE", "0x80004005", "MachineWrap", "IMachine",
            "")
    if os.environ.get("VBOX_SIM_FAULT") == "vtx":
        raise VBoxError(
            "VT-x is being used by another hypervisor (VERR_VMX_IN_VMX_ROOT_MODE).\nVirtualBox can't operate "
            "in VMX root mode. Please disable the KVM kernel extension, recompile your kernel and reboot",
            "NS_ERROR_FAILURE", "0x80004005", "ConsoleWrap", "IConsole")
    incoming = None
    if m["state"] == "saved" and m["state_file"]:
        incoming = Path(m["state_file"])
    if not any(a.get("medium") for a in m["attachments"].values()):
        pass  # a diskless VM still boots (into nothing), as on VirtualBox
    reg.boot(m, incoming)
    if incoming is not None:
        incoming.unlink(missing_ok=True)
        m["state_file"] = None
    m["state"] = "running"


def require_running(m: dict[str, Any]) -> None:
    if m["state"] not in ("running", "paused"):
        raise VBoxError(
            f"Machine '{m['name']}' is not currently running", "VBOX_E_INVALID_VM_STATE", "0x80bb0002",
            "MachineWrap", "IMachine")


def power_button(reg: Registry, m: dict[str, Any]) -> None:
    require_running(m)
    reg.qemu(m).power_button()


def power_off(reg: Registry, m: dict[str, Any]) -> None:
    require_running(m)
    reg.qemu(m).kill()
    m["state"] = "poweroff"


def pause(reg: Registry, m: dict[str, Any]) -> None:
    if m["state"] != "running":
        raise invalid_state(m, "Running")
    reg.qemu(m).pause()
    m["state"] = "paused"


def resume(reg: Registry, m: dict[str, Any]) -> None:
    if m["state"] != "paused":
        raise invalid_state(m, "Paused")
    reg.qemu(m).cont()
    m["state"] = "running"


def save_state(reg: Registry, m: dict[str, Any]) -> None:
    require_running(m)
    stamp = f"{datetime.datetime.now():%Y-%m-%dT%H-%M-%S}-{uuidlib.uuid4().hex[:6]}"
    state_file = Path(m["folder"]) / "Snapshots" / f"{stamp}.sav"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    reg.qemu(m).save_memory(state_file, keep_running=False)
    m["state"] = "saved"
    m["state_file"] = str(state_file)


def discard_state(reg: Registry, m: dict[str, Any]) -> None:
    if m["state"] != "saved":
        raise invalid_state(m, "Saved")
    if m["state_file"]:
        Path(m["state_file"]).unlink(missing_ok=True)
    m["state_file"] = None
    m["state"] = "poweroff"


def take_snapshot(reg: Registry, m: dict[str, Any], name: str, description: str, live: bool) -> str:
    if m["state"] == "saved":
        online = True
    else:
        online = m["state"] in ("running", "paused")
    snap_uuid = str(uuidlib.uuid4())
    folder = Path(m["folder"]) / "Snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    state_copy = None
    qemu = reg.qemu(m)
    running = m["state"] in ("running", "paused")
    if running:
        state_copy = folder / f"{{{snap_uuid}}}.sav"
        was_paused = m["state"] == "paused"
        qemu.save_memory(state_copy, keep_running=True)  # pauses while writing, as a non-live snapshot does
        if was_paused:
            qemu.pause()
        del live  # both kinds save memory; --live only shortens the pause on a real host
    elif m["state"] == "saved" and m["state_file"]:
        state_copy = folder / f"{{{snap_uuid}}}.sav"
        state_copy.write_bytes(Path(m["state_file"]).read_bytes())
    frozen: dict[str, str] = {}
    drive_index = 0
    for slot, a in sorted(m["attachments"].items()):
        if not a.get("medium"):
            continue
        if a["type"] == "hdd":
            current = reg.media[a["medium"]]
            new = reg.create_diff(current, folder)
            if running:
                qemu.snapshot_drive(drive_index, Path(new["location"]), "qcow2")
            frozen[slot] = current["uuid"]
            a["medium"] = new["uuid"]
        drive_index += 1
    m["snapshots"][snap_uuid] = {
        "uuid": snap_uuid, "name": name, "description": description, "parent": m["current_snapshot"],
        "media": frozen, "state_file": str(state_copy) if state_copy else None, "online": online,
        "time": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    m["current_snapshot"] = snap_uuid
    return snap_uuid


def restore_snapshot(reg: Registry, m: dict[str, Any], snap: dict[str, Any]) -> None:
    if m["state"] in ("running", "paused"):
        raise VBoxError(
            f"Cannot restore a snapshot of a running VM (machine state: {STATE_NAMES[m['state']]})",
            "VBOX_E_INVALID_VM_STATE", "0x80bb0002", "SessionMachine", "IMachine")
    folder = Path(m["folder"]) / "Snapshots"
    for slot, a in m["attachments"].items():
        if a["type"] != "hdd" or slot not in snap["media"]:
            continue
        old = a["medium"]
        new = reg.create_diff(reg.media[snap["media"][slot]], folder)
        a["medium"] = new["uuid"]
        if not reg.children(old) and not _in_snapshot(m, old):
            reg.drop_medium(old)
    if m["state_file"]:
        Path(m["state_file"]).unlink(missing_ok=True)
        m["state_file"] = None
    if snap["state_file"]:
        restored = folder / f"{uuidlib.uuid4().hex}.sav"
        restored.write_bytes(Path(snap["state_file"]).read_bytes())
        m["state_file"] = str(restored)
        m["state"] = "saved"
    else:
        m["state"] = "poweroff"
    m["current_snapshot"] = snap["uuid"]


def _in_snapshot(m: dict[str, Any], med_uuid: str) -> bool:
    return any(med_uuid in s["media"].values() for s in m["snapshots"].values())


def delete_snapshot(reg: Registry, m: dict[str, Any], snap: dict[str, Any]) -> None:
    qemu = reg.qemu(m)
    running = m["state"] in ("running", "paused") and qemu.alive()
    hdd_slots = [slot for slot, a in sorted(m["attachments"].items()) if a.get("medium")]
    for med_uuid in snap["media"].values():
        med = reg.media[med_uuid]
        kids = reg.children(med_uuid)
        if len(kids) > 1:
            raise VBoxError(
                f"Hard disk '{med['location']}' has more than one child hard disk ({len(kids)})",
                "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "SessionMachine", "IMachine")
    for slot, med_uuid in snap["media"].items():
        med = reg.media[med_uuid]
        kids = reg.children(med_uuid)
        if not kids:  # nothing builds on the image any more: VirtualBox deletes it with the snapshot
            reg.drop_medium(med_uuid)
            continue
        child = kids[0]
        parent = reg.media[med["parent"]] if med["parent"] else None
        is_active_top = running and m["attachments"][slot]["medium"] == child["uuid"]
        if is_active_top:
            qemu.stream_into_top(hdd_slots.index(slot), Path(parent["location"]) if parent else None)
        elif parent is not None:
            if running:
                raise VBoxError(
                    "Merging a snapshot that is not the parent of the current state of a running VM is not "
                    "supported by this simulator", "E_NOTIMPL", "0x80004001", "SessionMachine", "IMachine")
            rel = os.path.relpath(parent["location"], Path(child["location"]).parent)
            qemu_img("rebase", "-q", "-f", "qcow2", "-b", rel, "-F", reg.chain_format(parent),
                     child["location"])
        else:  # the snapshot's image is a base: merge the child down into it instead
            raise VBoxError("Cannot merge into a base medium that is not differencing", "E_NOTIMPL",
                            "0x80004001", "SessionMachine", "IMachine")
        if not is_active_top and parent is not None:
            pass
        child["parent"] = med["parent"]
        reg.drop_medium(med_uuid)
    for child_snap in reg.snapshot_children(m, snap["uuid"]):
        child_snap["parent"] = snap["parent"]
    if m["current_snapshot"] == snap["uuid"]:
        m["current_snapshot"] = snap["parent"]
    if snap["state_file"]:
        Path(snap["state_file"]).unlink(missing_ok=True)
    del m["snapshots"][snap["uuid"]]


def clone_medium(reg: Registry, src: dict[str, Any], target: Path, fmt: str) -> dict[str, Any]:
    """A full, standalone copy of the medium's whole chain, as ``clonemedium``/``IMedium::cloneTo`` make."""
    if target.exists():
        raise VBoxError(f"Cannot create the medium storage unit '{target}' because it already exists",
                        "VBOX_E_FILE_ERROR", "0x80bb0004", "MediumWrap", "IMedium")
    qemu_fmt = {"VDI": "vdi", "VMDK": "vmdk", "RAW": "raw"}[fmt.upper()]
    qemu_img("convert", "-q", "-f", reg.chain_format(src), "-O", qemu_fmt, src["location"], str(target))
    med = reg.open_medium(str(target))
    return med


def clone_into_existing(reg: Registry, src: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """``clonemedium SRC TARGET --existing``: the source's content written into an existing medium.

    The manual (ch. 8, "VBoxManage clonemedium", --existing): "Perform the clone operation to an already
    existing destination medium. Only the portion of the source medium that fits into the destination
    medium is copied". The target may be a differencing image (written, its parent untouched); it must
    not be in use by a running machine, whose session holds it locked for writing.
    """
    for m in reg.machines.values():
        if m["state"] in ("running", "paused") and any(
                a.get("medium") == target["uuid"] for a in m["attachments"].values()):
            raise VBoxError(f"Medium '{target['location']}' is locked for writing by another task",
                            "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MediumWrap", "IMedium")
    if reg.children(target["uuid"]):
        raise VBoxError(f"Medium '{target['location']}' has differencing children and cannot be written",
                        "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MediumWrap", "IMedium")
    # qemu-img writes every source cluster, zeroes included (-n: no zero-initialised target assumed)
    qemu_img("convert", "-q", "-n", "-f", reg.chain_format(src), "-O", reg.chain_format(target),
             src["location"], target["location"])
    return target
