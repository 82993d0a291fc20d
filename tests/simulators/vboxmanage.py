"""Simulated ``VBoxManage``: the subset vmlog uses, with VirtualBox's documented output and error formats.

Reference: the VirtualBox User Manual, chapter 8 "VBoxManage" (https://www.virtualbox.org/manual/ch08.html):
8.5 ``list`` (``"name" {uuid}`` lines), 8.6 ``showvminfo --machinereadable`` (``key="value"`` lines,
numbers unquoted, keys quoted when they hold other characters than letters/digits), 8.7 ``createvm``,
8.8 ``modifyvm``, 8.13 ``startvm``, 8.14 ``controlvm``, 8.16 ``snapshot``, 8.17 ``closemedium``,
8.18 ``storageattach``, 8.19 ``storagectl``, 8.24 ``showmediuminfo``, 8.26 ``clonemedium``,
8.31 ``sharedfolder``, 8.32 ``setextradata``/``getextradata`` (``Key: k, Value: v`` lines), and
``internalcommands sethduuid`` (8.49, "VBoxManage internalcommands"); ``guestproperty`` and ``guestcontrol``
(the simulated Guest Additions) are in vbox_guest.py.
Errors are printed as VBoxManage's ``com::GlueHandleComError`` does::

    VBoxManage: error: <message>
    VBoxManage: error: Details: code <RESULT> (<hex>), component <C>, interface <I>, callee nsISupports
    VBoxManage: error: Context: "<call>" at line <n> of file <file>

with exit status 1; a bad option prints ``VBoxManage: error: Unknown option: --x`` with status 2
(RTEXITCODE_SYNTAX). Long operations print ``0%...10%...20%...`` progress to stderr.
Unknown ``modifyvm`` options are rejected, which is how tests check that the backend only uses
documented settings.

Fault injection (for the backend's error mapping): ``VBOX_SIM_FAULT=vboxdrv`` prints VirtualBox's
"vboxdrv kernel module is not loaded" warning and fails ``startvm``; ``VBOX_SIM_FAULT=vtx`` makes
``startvm`` fail with VERR_VMX_IN_VMX_ROOT_MODE.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators import vbox_guest, vbox_ops  # noqa: E402
from simulators.vbox_model import VERSION, Registry, VBoxError, read_vdi_uuid, write_vdi_uuid  # noqa: E402


class SyntaxProblem(Exception):
    pass


# Options of `modifyvm` that the simulator understands, each with its documented spelling(s) (manual 8.8).
MODIFYVM_OPTIONS = {
    "--name", "--ostype", "--os-type", "--memory", "--cpus", "--firmware", "--ioapic", "--acpi", "--rtcuseutc",
    "--rtc-use-utc", "--boot1", "--boot2", "--boot3", "--boot4", "--graphicscontroller",
    "--vram", "--audio", "--audio-driver", "--usb", "--description", "--pae", "--nic1", "--nictype1",
    "--nic-type1", "--cableconnected1", "--cable-connected1", "--natpf1", "--nat-pf1", "--macaddress1",
    "--mac-address1", "--uart1", "--uartmode1", "--uart-mode1", "--uarttype1", "--uart-type1", "--uart2",
    "--uartmode2", "--uart-mode2", "--uarttype2", "--uart-type2", "--paravirtprovider", "--paravirt-provider",
    "--clipboard-mode", "--clipboard", "--draganddrop", "--drag-and-drop", "--hwvirtex", "--nested-paging",
}
UART_ARGS = 2  # --uartN <I/O base> <IRQ>
UART_MODE_ARGS = {"disconnected": 0, "server": 1, "client": 1, "tcpserver": 1, "tcpclient": 1, "file": 1}


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def progress() -> None:
    sys.stderr.write("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n")


def fail(exc: VBoxError) -> int:
    for line in exc.message.splitlines():
        sys.stderr.write(f"VBoxManage: error: {line}\n")
    sys.stderr.write(
        f"VBoxManage: error: Details: code {exc.code} ({exc.hexcode}), component {exc.component}, "
        f"interface {exc.interface}, callee nsISupports\n")
    if exc.context:
        sys.stderr.write(f'VBoxManage: error: Context: "{exc.context}" at line 1 of file VBoxManageSim.cpp\n')
    return 1


def parse(args: list[str], spec: dict[str, int], positional: int) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """RTGetOpt-style parsing: ``--opt value`` or ``--opt=value``; options may repeat."""
    pos: list[str] = []
    opts: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            if name not in spec:
                raise SyntaxProblem(f"Unknown option: {name}")
            count = spec[name]
            values = [inline] if eq else []
            need = count - len(values)
            values += args[i + 1 : i + 1 + need]
            if len(values) < count:
                raise SyntaxProblem(f"Missing value for option {name}")
            opts.append((name, values))
            i += 1 + need
        else:
            pos.append(arg)
            i += 1
    if len(pos) < positional:
        raise SyntaxProblem("Missing arguments")
    return pos, opts


def quote_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_]+", key) else f'"{key}"'


def kv(key: str, value: Any) -> str:
    """One machine-readable line as VBoxManage prints it: ``"`` and ``\\`` escaped, newlines kept."""
    if isinstance(value, int):
        return f"{quote_key(key)}={value}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{quote_key(key)}="{escaped}"'


# -- commands ------------------------------------------------------------------------------------------
def cmd_list(args: list[str]) -> int:
    what = args[0] if args else ""
    with Registry.open() as reg:
        if what == "vms":
            for m in reg.machines.values():
                out(f'"{m["name"]}" {{{m["uuid"]}}}')
        elif what == "runningvms":
            for m in reg.machines.values():
                if m["state"] in ("running", "paused"):
                    out(f'"{m["name"]}" {{{m["uuid"]}}}')
        elif what == "hdds":
            for med in reg.media.values():
                if med["device"] != "HardDisk":
                    continue
                out(f"UUID:           {med['uuid']}")
                out(f"Parent UUID:    {med['parent'] or 'base'}")
                out("State:          created")
                out(f"Type:           {med['type']} ({'differencing' if med['parent'] else 'base'})")
                out(f"Location:       {med['location']}")
                out(f"Storage format: {reg.storage_format(med)}")
                out(f"Capacity:       {med['capacity'] // (1024 * 1024)} MBytes")
                out("Encryption:     disabled")
                out()
        else:
            raise SyntaxProblem(f"Unknown subcommand: {what}")
    return 0


def snapshot_lines(reg: Registry, m: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    current_node = None

    def walk(snap: dict[str, Any], prefix: str) -> None:
        nonlocal current_node
        lines.append(kv(f"SnapshotName{prefix}", snap["name"]))
        lines.append(kv(f"SnapshotUUID{prefix}", snap["uuid"]))
        if snap["description"]:
            lines.append(kv(f"SnapshotDescription{prefix}", snap["description"]))
        if snap["uuid"] == m["current_snapshot"]:
            current_node = f"SnapshotName{prefix}"
        for index, child in enumerate(reg.snapshot_children(m, snap["uuid"]), start=1):
            walk(child, f"{prefix}-{index}")

    roots = reg.snapshot_children(m, None)
    for index, root in enumerate(roots):
        walk(root, "" if index == 0 else f"-{index}")  # VirtualBox has a single root snapshot
    if m["current_snapshot"]:
        cur = m["snapshots"][m["current_snapshot"]]
        lines.append(kv("CurrentSnapshotName", cur["name"]))
        lines.append(kv("CurrentSnapshotUUID", cur["uuid"]))
        lines.append(kv("CurrentSnapshotNode", current_node or ""))
    return lines


def cmd_showvminfo(args: list[str]) -> int:
    pos, opts = parse(args, {"--machinereadable": 0, "--details": 0}, 1)
    if not any(o == "--machinereadable" for o, _ in opts):
        raise SyntaxProblem("only --machinereadable output is simulated")
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        lines = [
            kv("name", m["name"]), *(["Encryption:     disabled"] if int(VERSION.split(".")[0]) >= 7 else []),
            kv("groups", "/"), kv("ostype", m["ostype"]), kv("UUID", m["uuid"]),
            kv("CfgFile", m["settings_file"]), kv("SnapFldr", str(Path(m["folder"]) / "Snapshots")),
            kv("LogFldr", str(Path(m["folder"]) / "Logs")), kv("memory", m["memory"]), kv("cpus", m["cpus"]),
            kv("firmware", m["firmware"].upper()), kv("VMState", m["state"]),
            kv("VMStateChangeTime", "2024-01-01T00:00:00.000000000"),
        ]
        if m["state"] == "saved" and m["state_file"]:
            lines.append(kv("VMStateFile", m["state_file"]))
        for index, (name, ctl) in enumerate(sorted(m["controllers"].items())):
            lines += [kv(f"storagecontrollername{index}", name), kv(f"storagecontrollertype{index}", ctl["chipset"]),
                      kv(f"storagecontrollerportcount{index}", ctl["portcount"]),
                      kv(f"storagecontrollerbootable{index}", "on")]
        for slot, a in sorted(m["attachments"].items()):
            ctl, port, device = slot.split(":")
            med = reg.media.get(a.get("medium") or "")
            lines.append(kv(f"{ctl}-{port}-{device}", med["location"] if med else
                            ("emptydrive" if a["type"] == "dvddrive" else "none")))
            if med:
                lines.append(kv(f"{ctl}-ImageUUID-{port}-{device}", med["uuid"]))
        for n, nic in sorted(m["nics"].items()):
            lines += [kv(f"nic{n}", nic["type"]), kv(f"nictype{n}", nic["nictype"])]
            if nic.get("mac"):
                lines.append(kv(f"macaddress{n}", nic["mac"]))
            for index, (rule_name, rule) in enumerate(sorted(nic["forwards"].items())):
                lines.append(kv(f"Forwarding({index})", f"{rule_name},{rule['proto']},{rule['host_ip']},"
                                f"{rule['host_port']},{rule['guest_ip']},{rule['guest_port']}"))
        for n in ("1", "2"):
            uart = m["uarts"].get(n)
            if uart is None:
                lines.append(kv(f"uart{n}", "off"))
                continue
            lines.append(kv(f"uart{n}", f"{uart['io']},{uart['irq']}"))
            mode = uart["mode"] if uart["mode"] == "disconnected" else f"{uart['mode']},{uart['path']}"
            lines += [kv(f"uartmode{n}", mode), kv(f"uarttype{n}", "16550A")]
        for index, (tag, folder) in enumerate(sorted(m["shared_folders"].items()), start=1):
            lines += [kv(f"SharedFolderNameMachineMapping{index}", tag),
                      kv(f"SharedFolderPathMachineMapping{index}", folder["path"])]
        if m["description"]:
            lines.append(kv("description", m["description"]))
        lines += vbox_guest.info_lines(m)
        lines += snapshot_lines(reg, m)
    for line in lines:
        out(line)
    return 0


def cmd_createvm(args: list[str]) -> int:
    _, opts = parse(args, {"--name": 1, "--basefolder": 1, "--ostype": 1, "--register": 0, "--default": 0,
                           "--uuid": 1, "--groups": 1}, 0)
    values = {k: v[0] if v else True for k, v in opts}
    if "--name" not in values:
        raise SyntaxProblem("Missing --name")
    basefolder = Path(str(values.get("--basefolder", Path.home() / "VirtualBox VMs")))
    with Registry.open() as reg:
        m = reg.create_machine(str(values["--name"]), basefolder, str(values.get("--ostype", "Other")))
        if "--register" not in values:
            del reg.machines[m["uuid"]]
    out(f"Virtual machine '{m['name']}' is created{' and registered' if '--register' in values else ''}.")
    out(f"UUID: {m['uuid']}")
    out(f"Settings file: '{m['settings_file']}'")
    return 0


def _on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise SyntaxProblem(f"Invalid value '{value}': expected on or off")
    return value == "on"


def cmd_modifyvm(args: list[str]) -> int:
    spec = {o: 1 for o in MODIFYVM_OPTIONS}
    spec.update({"--uart1": UART_ARGS, "--uart2": UART_ARGS})
    # uart mode takes 1 or 2 words: parse by hand before the generic parser
    mode_args: list[tuple[str, list[str]]] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in ("--natpf1", "--nat-pf1") and i + 1 < len(args) and args[i + 1] == "delete":
            if i + 2 >= len(args):
                raise SyntaxProblem(f"Missing rule name for {args[i]} delete")
            mode_args.append(("--natpf1-delete", [args[i + 2]]))  # `--natpf1 delete NAME`: two words
            i += 3
        elif args[i] in ("--uartmode1", "--uart-mode1", "--uartmode2", "--uart-mode2"):
            kind = args[i + 1] if i + 1 < len(args) else ""
            if kind not in UART_MODE_ARGS:
                raise SyntaxProblem(f"Invalid UART mode '{kind}'")
            n = UART_MODE_ARGS[kind]
            mode_args.append((args[i], args[i + 1 : i + 2 + n]))
            i += 2 + n
        else:
            rest.append(args[i])
            i += 1
    pos, opts = parse(rest, spec, 1)
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        vbox_ops.require_mutable(m)
        for name, values in opts:
            value = values[0] if values else ""
            if name in ("--memory",):
                m["memory"] = int(value)
            elif name == "--cpus":
                m["cpus"] = int(value)
            elif name in ("--ostype", "--os-type"):
                m["ostype"] = value
            elif name == "--firmware":
                if value not in ("bios", "efi", "efi32", "efi64"):
                    raise SyntaxProblem(f"Invalid --firmware argument '{value}'")
                m["firmware"] = value
            elif name == "--description":
                m["description"] = value
            elif name in ("--ioapic", "--acpi", "--rtcuseutc", "--rtc-use-utc", "--pae", "--usb",
                          "--hwvirtex", "--nested-paging", "--cableconnected1", "--cable-connected1"):
                m["extra"][name.lstrip("-")] = _on_off(value)
            elif name == "--nic1":
                if value not in ("none", "null", "nat", "bridged", "intnet", "hostonly", "natnetwork"):
                    raise SyntaxProblem(f"Invalid type '{value}' specfied for NIC 1")
                m["nics"]["1"]["type"] = value
            elif name in ("--nictype1", "--nic-type1"):
                if value not in ("Am79C970A", "Am79C973", "82540EM", "82543GC", "82545EM", "virtio"):
                    raise SyntaxProblem(f"Invalid NIC type '{value}' specified for NIC 1")
                m["nics"]["1"]["nictype"] = value
            elif name in ("--macaddress1", "--mac-address1"):
                m["nics"]["1"]["mac"] = value
            elif name in ("--natpf1", "--nat-pf1"):
                forwards = m["nics"]["1"]["forwards"]
                parts = value.split(",")
                if len(parts) != 6 or parts[1] not in ("tcp", "udp"):
                    raise SyntaxProblem(f"Invalid NAT rule '{value}': expected name,proto,hostip,hostport,guestip,"
                                        "guestport")
                if parts[0] in forwards:
                    raise VBoxError("A NAT rule of this name already exists", "NS_ERROR_INVALID_ARG",
                                    "0x80070057", "NATEngineWrap", "INATEngine")
                forwards[parts[0]] = {"proto": parts[1], "host_ip": parts[2], "host_port": int(parts[3]),
                                      "guest_ip": parts[4], "guest_port": int(parts[5])}
            elif name in ("--uart1", "--uart2"):
                n = name[-1]
                if values[0] == "off":
                    m["uarts"].pop(n, None)
                    continue
                m["uarts"][n] = {**m["uarts"].get(n, {"mode": "disconnected", "path": ""}),
                                 "io": values[0].lower(), "irq": int(values[1])}
            else:
                m["extra"][name.lstrip("-")] = value
        for name, values in mode_args:
            if name == "--natpf1-delete":
                if values[0] not in m["nics"]["1"]["forwards"]:
                    raise VBoxError(f"A NAT rule of name '{values[0]}' does not exist", "NS_ERROR_INVALID_ARG",
                                    "0x80070057", "NATEngineWrap", "INATEngine")
                del m["nics"]["1"]["forwards"][values[0]]
                continue
            n = name[-1]
            if n not in m["uarts"]:
                raise VBoxError(f"UART {n} is not enabled", "E_INVALIDARG", "0x80070057", "SerialPortWrap",
                                "ISerialPort")
            m["uarts"][n]["mode"] = values[0]
            m["uarts"][n]["path"] = values[1] if len(values) > 1 else ""
        reg.write_settings(m)
    return 0


def cmd_storagectl(args: list[str]) -> int:
    pos, opts = parse(args, {"--name": 1, "--add": 1, "--controller": 1, "--portcount": 1, "--bootable": 1,
                             "--hostiocache": 1, "--remove": 0}, 1)
    values = {k: v[0] if v else True for k, v in opts}
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        vbox_ops.require_mutable(m)
        name = str(values["--name"])
        if "--remove" in values:
            m["controllers"].pop(name, None)
        else:
            bus = str(values.get("--add", "sata"))
            if bus not in ("ide", "sata", "scsi", "floppy", "sas", "usb", "pcie", "virtio"):
                raise SyntaxProblem(f"Invalid --add argument '{bus}'")
            m["controllers"][name] = {"bus": bus, "chipset": str(values.get("--controller", "IntelAhci")),
                                      "portcount": int(values.get("--portcount", 30 if bus == "sata" else 2))}
        reg.write_settings(m)
    return 0


def cmd_storageattach(args: list[str]) -> int:
    pos, opts = parse(args, {"--storagectl": 1, "--port": 1, "--device": 1, "--type": 1, "--medium": 1,
                             "--mtype": 1, "--nonrotational": 1, "--discard": 1, "--comment": 1}, 1)
    values = {k: v[0] for k, v in opts}
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        vbox_ops.require_mutable(m)
        ctl = values["--storagectl"]
        if ctl not in m["controllers"]:
            raise VBoxError(f"Could not find a controller named '{ctl}'", "VBOX_E_OBJECT_NOT_FOUND",
                            "0x80bb0001", "SessionMachine", "IMachine")
        slot = f"{ctl}:{values.get('--port', '0')}:{values.get('--device', '0')}"
        medium = values.get("--medium", "none")
        kind = values.get("--type", "hdd")
        if kind not in ("hdd", "dvddrive", "fdd"):
            raise SyntaxProblem(f"Invalid --type argument '{kind}'")
        old = m["attachments"].pop(slot, None)
        if old and old.get("medium") and reg.media[old["medium"]]["format"] == "qcow2-diff":
            reg.drop_medium(old["medium"])
        if medium == "none":
            reg.write_settings(m)
            return 0
        if medium == "emptydrive":
            m["attachments"][slot] = {"type": kind, "medium": None}
            reg.write_settings(m)
            return 0
        med = reg.media.get(medium.strip("{}")) or reg.open_medium(medium)
        mtype = values.get("--mtype")
        if mtype:
            if mtype not in ("normal", "writethrough", "immutable", "shareable", "readonly", "multiattach"):
                raise SyntaxProblem(f"Invalid --mtype argument '{mtype}'")
            in_use = [o for o in reg.machines.values() for a in o["attachments"].values()
                      if a.get("medium") and reg.media[a["medium"]]["parent"] == med["uuid"]]
            if med["type"] != mtype and in_use and med["type"] != "normal":
                raise VBoxError(f"Cannot change the type of medium '{med['location']}' because it is attached "
                                "to virtual machines", "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007",
                                "MediumWrap", "IMedium")
            med["type"] = mtype
        if kind == "hdd" and med["type"] in ("multiattach", "immutable"):
            diff = reg.create_diff(med, Path(m["folder"]) / "Snapshots")
            m["attachments"][slot] = {"type": kind, "medium": diff["uuid"]}
        else:
            m["attachments"][slot] = {"type": kind, "medium": med["uuid"]}
        reg.write_settings(m)
    return 0


def cmd_sharedfolder(args: list[str]) -> int:
    action = args[0] if args else ""
    pos, opts = parse(args[1:], {"--name": 1, "--hostpath": 1, "--readonly": 0, "--automount": 0,
                                 "--auto-mount-point": 1, "--transient": 0}, 1)
    values = {k: v[0] if v else True for k, v in opts}
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        name = str(values["--name"])
        if action == "add":
            if name in m["shared_folders"]:
                raise VBoxError(f"Shared folder named '{name}' already exists", "VBOX_E_OBJECT_IN_USE",
                                "0x80bb000c", "SessionMachine", "IMachine")
            m["shared_folders"][name] = {"path": str(values["--hostpath"]), "readonly": "--readonly" in values,
                                         "automount": "--automount" in values}
        elif action == "remove":
            if name not in m["shared_folders"]:
                raise VBoxError(f"Could not find a shared folder named '{name}'.", "VBOX_E_OBJECT_NOT_FOUND",
                                "0x80bb0001", "SessionMachine", "IMachine")
            del m["shared_folders"][name]
        else:
            raise SyntaxProblem(f"Invalid parameter '{action}'")
        reg.write_settings(m)
    return 0


def cmd_startvm(args: list[str]) -> int:
    pos, opts = parse(args, {"--type": 1}, 1)
    kind = dict((k, v[0]) for k, v in opts).get("--type", "gui")
    if kind not in ("gui", "headless", "sdl", "separate"):
        raise SyntaxProblem(f"Invalid session type '{kind}'")
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        out(f'Waiting for VM "{m["name"]}" to power on...')
        vbox_ops.start(reg, m)
        out(f'VM "{m["name"]}" has been successfully started.')
    return 0


def cmd_controlvm(args: list[str]) -> int:
    if len(args) < 2:
        raise SyntaxProblem("Not enough parameters")
    with Registry.open() as reg:
        m = reg.find_machine(args[0])
        action = args[1]
        if action == "acpipowerbutton":
            vbox_ops.power_button(reg, m)
        elif action == "poweroff":
            vbox_ops.power_off(reg, m)
            progress()
        elif action == "savestate":
            vbox_ops.save_state(reg, m)
            progress()
        elif action == "pause":
            vbox_ops.pause(reg, m)
        elif action == "resume":
            vbox_ops.resume(reg, m)
        else:
            raise SyntaxProblem(f"Invalid parameter '{action}'")
    return 0


def cmd_discardstate(args: list[str]) -> int:
    with Registry.open() as reg:
        vbox_ops.discard_state(reg, reg.find_machine(args[0]))
    return 0


def cmd_snapshot(args: list[str]) -> int:
    if len(args) < 2:
        raise SyntaxProblem("Not enough parameters")
    vm, action, rest = args[0], args[1], args[2:]
    with Registry.open() as reg:
        m = reg.find_machine(vm)
        if action == "take":
            pos, opts = parse(rest, {"--description": 1, "--live": 0, "--uniquename": 1}, 1)
            values = {k: v[0] if v else True for k, v in opts}
            snap_uuid = vbox_ops.take_snapshot(reg, m, pos[0], str(values.get("--description", "")),
                                               "--live" in values)
            progress()
            out(f"Snapshot taken. UUID: {snap_uuid}")
        elif action == "restore":
            snap = reg.find_snapshot(m, rest[0])
            out(f"Restoring snapshot '{snap['name']}' ({snap['uuid']})")
            vbox_ops.restore_snapshot(reg, m, snap)
            progress()
        elif action == "restorecurrent":
            if not m["current_snapshot"]:
                raise VBoxError("This machine does not have any snapshots", "VBOX_E_OBJECT_NOT_FOUND")
            vbox_ops.restore_snapshot(reg, m, m["snapshots"][m["current_snapshot"]])
            progress()
        elif action == "delete":
            snap = reg.find_snapshot(m, rest[0])
            out(f"Deleting snapshot '{snap['name']}' ({snap['uuid']})")
            vbox_ops.delete_snapshot(reg, m, snap)
            progress()
        elif action == "list":
            if not m["snapshots"]:
                out("This machine does not have any snapshots")
                return 1
            for line in snapshot_lines(reg, m):
                out(line)
        else:
            raise SyntaxProblem(f"Invalid parameter '{action}'")
    return 0


def cmd_unregistervm(args: list[str]) -> int:
    pos, opts = parse(args, {"--delete": 0, "--delete-all": 0}, 1)
    with Registry.open() as reg:
        m = reg.find_machine(pos[0])
        if m["state"] in ("running", "paused"):
            raise VBoxError(f"Cannot unregister the machine '{m['name']}' while it is locked",
                            "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MachineWrap", "IMachine")
        if opts:
            reg.delete_machine_files(m)
            progress()
        del reg.machines[m["uuid"]]
    return 0


def _medium_args(args: list[str]) -> list[str]:
    return args[1:] if args and args[0] in ("disk", "dvd", "floppy") else args


def cmd_showmediuminfo(args: list[str]) -> int:
    args = _medium_args(args)
    with Registry.open() as reg:
        try:
            med = reg.medium(args[0])
        except VBoxError:
            med = reg.open_medium(args[0])
        users = [o for o in reg.machines.values()
                 if any(a.get("medium") == med["uuid"] for a in o["attachments"].values())]
        out(f"UUID:           {med['uuid']}")
        out(f"Parent UUID:    {med['parent'] or 'base'}")
        out("State:          created")
        kind = med["type"] + (" (base)" if not med["parent"] else " (differencing)")
        out(f"Type:           {kind}")
        out(f"Location:       {med['location']}")
        out(f"Storage format: {reg.storage_format(med)}")
        out(f"Capacity:       {med['capacity'] // (1024 * 1024)} MBytes")
        out(f"Size on disk:   {os.path.getsize(med['location']) // (1024 * 1024)} MBytes")
        out("Encryption:     disabled")
        if users:
            out("In use by VMs:  " + ", ".join(f"{u['name']} (UUID: {u['uuid']})" for u in users))
        for child in reg.children(med["uuid"]):
            out(f"Child UUIDs:    {child['uuid']}")
    return 0


def cmd_clonemedium(args: list[str]) -> int:
    args = _medium_args(args)
    pos, opts = parse(args, {"--format": 1, "--variant": 1, "--existing": 0}, 2)
    values = dict((k, v[0] if v else "") for k, v in opts)
    fmt = values.get("--format", "VDI")
    with Registry.open() as reg:
        try:
            src = reg.medium(pos[0])
        except VBoxError:
            src = reg.open_medium(pos[0])
        if "--existing" in values:
            target = vbox_ops.clone_into_existing(reg, src, reg.medium(pos[1]))
            progress()
            out(f"Clone medium created in format '{reg.storage_format(target)}'. "
                f"UUID: {target['uuid']}")
            return 0
        new = vbox_ops.clone_medium(reg, src, Path(pos[1]).resolve(), fmt)
        progress()
        out(f"Clone medium created in format '{fmt.upper()}'. UUID: {new['uuid']}")
    return 0


def cmd_closemedium(args: list[str]) -> int:
    args = _medium_args(args)
    pos, opts = parse(args, {"--delete": 0}, 1)
    with Registry.open() as reg:
        med = reg.medium(pos[0])
        users = [o["name"] for o in reg.machines.values()
                 if any(a.get("medium") == med["uuid"] for a in o["attachments"].values())]
        if users or reg.children(med["uuid"]):
            raise VBoxError(
                f"Cannot close medium '{med['location']}' because it has {len(reg.children(med['uuid']))} child "
                "media" if not users else f"Medium '{med['location']}' cannot be closed because it is still "
                f"attached to 1 virtual machines", "VBOX_E_OBJECT_IN_USE", "0x80bb000c", "MediumWrap", "IMedium")
        if opts:
            reg.drop_medium(med["uuid"])
            progress()
        else:
            del reg.media[med["uuid"]]
    return 0


def cmd_internalcommands(args: list[str]) -> int:
    if len(args) >= 2 and args[0] == "sethduuid":
        path = Path(args[1]).resolve()
        new = args[2] if len(args) > 2 else str(__import__("uuid").uuid4())
        with Registry.open() as reg:
            if any(med["location"] == str(path) for med in reg.media.values()):
                raise VBoxError(f"Cannot change the UUID of the registered medium '{path}'",
                                "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MediumWrap", "IMedium")
            write_vdi_uuid(path, new)
        out(f"UUID changed to: {read_vdi_uuid(path)}")
        return 0
    raise SyntaxProblem("Invalid internal command")


def cmd_setextradata(args: list[str]) -> int:
    if len(args) < 2:
        raise SyntaxProblem("Not enough parameters")
    with Registry.open() as reg:
        m = reg.find_machine(args[0])
        if len(args) > 2 and args[2] != "":
            m["extradata"] = {**m.get("extradata", {}), args[1]: args[2]}
        else:
            m.get("extradata", {}).pop(args[1], None)
    return 0


def cmd_getextradata(args: list[str]) -> int:
    if len(args) < 2:
        raise SyntaxProblem("Not enough parameters")
    with Registry.open() as reg:
        data = reg.find_machine(args[0]).get("extradata", {})
    if args[1] == "enumerate":
        for key, value in sorted(data.items()):
            out(f"Key: {key}, Value: {value}")
    elif args[1] in data:
        out(f"Value: {data[args[1]]}")
    else:
        out("No value set!")
    return 0


COMMANDS = {
    "setextradata": cmd_setextradata, "getextradata": cmd_getextradata,
    "list": cmd_list, "showvminfo": cmd_showvminfo, "createvm": cmd_createvm, "modifyvm": cmd_modifyvm,
    "storagectl": cmd_storagectl, "storageattach": cmd_storageattach, "sharedfolder": cmd_sharedfolder,
    "startvm": cmd_startvm, "controlvm": cmd_controlvm, "discardstate": cmd_discardstate,
    "snapshot": cmd_snapshot, "unregistervm": cmd_unregistervm, "showmediuminfo": cmd_showmediuminfo,
    "showhdinfo": cmd_showmediuminfo, "clonemedium": cmd_clonemedium, "clonehd": cmd_clonemedium,
    "closemedium": cmd_closemedium, "internalcommands": cmd_internalcommands,
    "guestproperty": vbox_guest.cmd_guestproperty, "guestcontrol": vbox_guest.cmd_guestcontrol,
}


VBOXDRV_WARNING = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "virtualbox" / "vboxdrv-warning.txt"


def main(argv: list[str]) -> int:
    if os.environ.get("VBOX_SIM_FAULT") == "vboxdrv":  # the Linux wrapper script's warning, on stdout as VBox.sh
        sys.stdout.write(VBOXDRV_WARNING.read_text())
    if argv and argv[0] in ("-q", "--nologo"):
        argv = argv[1:]
    if not argv or argv[0] in ("-v", "--version", "-version"):
        if argv:
            out(VERSION)
            return 0
        out("Oracle VM VirtualBox Command Line Management Interface Version " + VERSION.split("r")[0])
        return 2
    command = COMMANDS.get(argv[0])
    if command is None:
        sys.stderr.write(f"VBoxManage: error: Invalid command '{argv[0]}'\n")
        return 2
    try:
        return command(argv[1:])
    except SyntaxProblem as exc:
        sys.stderr.write(f"VBoxManage: error: {exc}\n")
        return 2
    except VBoxError as exc:
        return fail(exc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
