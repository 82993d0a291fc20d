"""Simulated ``vmrun`` (VMware VIX command line): the commands vmlog uses, on real .vmx/.vmsd files and VMDKs.

Reference: VMware, "Using vmrun to Control Virtual Machines" (Workstation Pro / Fusion documentation,
"vmrun Commands": Power Commands ``start <vmx> [gui|nogui]``, ``stop <vmx> [hard|soft]``,
``suspend <vmx> [hard|soft]``, ``list`` printing ``Total running VMs: N`` and one .vmx path a line;
Snapshot Commands ``listSnapshots <vmx> [showTree]`` printing ``Total snapshots: N`` and one name a
line (tab-indented by depth with showTree), ``snapshot <vmx> <name>``, ``deleteSnapshot <vmx> <name>
[andDeleteChildren]``, ``revertToSnapshot <vmx> <name>``; snapshot names may be ``a/b/c`` paths;
``deleteVM <vmx>``). Failures print ``Error: <text>`` and exit with status 255. Running ``vmrun``
alone prints its usage, headed ``vmrun version 1.17.0 build-...``.

What it does for real: disks are VMDKs; ``snapshot`` freezes each current disk and creates a delta
VMDK on it with qemu-img (``<name>-000001.vmdk``, chained by ``parentCID``), recording the node in
the ``.vmsd`` as Workstation does (``snapshotN.uid/displayName/parent/disk0.fileName``,
``snapshot.current``, ``snapshot.lastUID``). A running VM is booted under QEMU; ``suspend`` writes its
RAM to ``<name>.vmss`` (``checkpoint.vmState`` in the .vmx) and ``start`` resumes from it; every
snapshot records its checkpoint file as Workstation does (``snapshotN.filename =
"<name>-Snapshot<uid>.vmsn"``, ``snapshotN.type``), and a snapshot of a running VM saves its memory
to the ``.vmem`` beside that ``.vmsn`` (VMware writes no ``vmState`` key in the .vmsd), switches the
disk to the new delta and resumes, because QEMU cannot create a VMDK overlay on a disk it has open.
``deleteSnapshot`` removes the node and merges the frozen delta only when nothing else builds on it
(VMware otherwise leaves the file for a later consolidation). The Guest OS commands (the simulated
VMware Tools) are in vmrun_guest.py.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators import vmrun_guest  # noqa: E402
from simulators.qemu_vm import BootSpec, DriveSpec, QemuVM  # noqa: E402

VERSION = "vmrun version 1.17.0 build-21139696"


class VmrunError(Exception):
    pass


class vmxfile:  # noqa: N801 - VMware's dictionary files, read independently of the backend's own parser
    @staticmethod
    def read(path: Path) -> dict[str, str]:
        values = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                match = re.match(r'^\s*([^#=\s]+)\s*=\s*"(.*)"\s*$', line)
                if match:
                    raw = re.sub(rb"\|([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                                 match.group(2).encode("utf-8"))
                    values[match.group(1)] = raw.decode("utf-8", "replace")  # every |XX escape, as VMware
        return values

    @staticmethod
    def write(path: Path, values: dict[str, str]) -> None:
        def escape(value: str) -> str:
            return re.sub(r'[|"#\x00-\x1f]', lambda m: f"|{ord(m.group(0)):02X}", value)

        body = ['.encoding = "UTF-8"'] + [f'{k} = "{escape(v)}"' for k, v in values.items() if k != ".encoding"]
        path.write_text("\n".join(body) + "\n", encoding="utf-8")


def qemu(vmx: Path) -> QemuVM:
    return QemuVM(vmx.parent / ".sim-run")


def load(vmx: Path) -> dict[str, str]:
    if not vmx.exists():
        raise VmrunError(f"Cannot open VM: {vmx}, The virtual machine cannot be found")
    return vmxfile.read(vmx)


def disk_nodes(values: dict[str, str]) -> list[str]:
    return sorted(k[: -len(".fileName")] for k in values
                  if re.match(r"^scsi0:\d+\.fileName$", k) and values.get(k.replace("fileName", "deviceType"))
                  == "scsi-hardDisk")


def boot(vmx: Path, values: dict[str, str], incoming: Path | None = None) -> None:
    drives = [DriveSpec(vmx.parent / values[f"{node}.fileName"], "vmdk") for node in disk_nodes(values)]
    for key, value in sorted(values.items()):
        if values.get(key.replace("fileName", "deviceType")) != "cdrom-image":
            continue
        ide = re.match(r"^ide([01]):([01])\.fileName$", key)
        if ide:
            drives.append(DriveSpec(Path(value), "raw", readonly=True, bus="ide",
                                    ide_index=int(ide.group(1)) * 2 + int(ide.group(2))))
        elif re.match(r"^sata0:\d+\.fileName$", key):
            drives.append(DriveSpec(Path(value), "raw", readonly=True))
    serial_log = Path(values["serial0.fileName"]) if values.get("serial0.fileType") == "file" else None
    channel = None
    if values.get("serial1.fileType") == "pipe" and values.get("serial1.pipe.endPoint") == "server":
        channel = Path(values["serial1.fileName"])
    qemu(vmx).boot(BootSpec(int(values.get("memsize", "256")), int(values.get("numvcpus", "1")), drives,
                            serial_log, channel, [], incoming))


def next_delta(vmdir: Path, base_file: str) -> str:
    stem = re.sub(r"-\d{6}$", "", Path(base_file).stem)
    n = 1
    while (vmdir / f"{stem}-{n:06d}.vmdk").exists():
        n += 1
    return f"{stem}-{n:06d}.vmdk"


def make_delta(vmdir: Path, parent: str) -> str:
    name = next_delta(vmdir, parent)
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-b", parent, "-F", "vmdk", name], cwd=vmdir,
                   check=True, capture_output=True)
    return name


def tree(vmsd: dict[str, str]) -> dict[str, dict[str, str]]:
    nodes = {}
    for key, uid in vmsd.items():
        match = re.match(r"^snapshot(\d+)\.uid$", key)
        if match:
            prefix = f"snapshot{match.group(1)}."
            nodes[uid] = {k[len(prefix):]: v for k, v in vmsd.items() if k.startswith(prefix)}
    return nodes


def memory_of(node: dict[str, str]) -> str:
    """The ``.vmem`` beside a node's ``.vmsn`` (it exists only for a snapshot that holds the memory)."""
    return str(Path(node.get("filename") or "none.vmsn").with_suffix(".vmem"))


def write_tree(path: Path, nodes: dict[str, dict[str, str]], current: str | None, last_uid: int) -> None:
    values = {"snapshot.lastUID": str(last_uid), "snapshot.numSnapshots": str(len(nodes))}
    if current:
        values["snapshot.current"] = current
    for index, (_uid, node) in enumerate(nodes.items()):
        for key, value in node.items():
            values[f"snapshot{index}.{key}"] = value
    vmxfile.write(path, values)


def path_of(nodes: dict[str, dict[str, str]], uid: str) -> str:
    names = []
    node = nodes.get(uid)
    while node is not None:
        names.append(node["displayName"])
        node = nodes.get(node.get("parent", ""))
    return "/".join(reversed(names))


def find(nodes: dict[str, dict[str, str]], name: str) -> str:
    matches = [uid for uid in nodes if path_of(nodes, uid) == name]
    if not matches and "/" not in name:
        matches = [uid for uid, node in nodes.items() if node["displayName"] == name]
    if not matches:
        raise VmrunError("A snapshot with the given name does not exist")
    if len(matches) > 1:
        raise VmrunError("The name does not uniquely identify one snapshot")
    return matches[0]


def running_vms() -> list[Path]:
    registry = Path(os.environ.get("VMRUN_SIM_HOME", Path.home() / ".vmrun-sim")) / "running"
    registry.mkdir(parents=True, exist_ok=True)
    alive = []
    for entry in registry.iterdir():
        vmx = Path(entry.read_text())
        if qemu(vmx).alive():
            alive.append(vmx)
        else:
            entry.unlink(missing_ok=True)
    return alive


def mark_running(vmx: Path) -> None:
    registry = Path(os.environ.get("VMRUN_SIM_HOME", Path.home() / ".vmrun-sim")) / "running"
    registry.mkdir(parents=True, exist_ok=True)
    (registry / re.sub(r"[^A-Za-z0-9]", "_", str(vmx))).write_text(str(vmx))


def command(cmd: str, args: list[str]) -> str:
    if cmd == "list":
        vms = running_vms()
        return "\n".join([f"Total running VMs: {len(vms)}", *map(str, vms)]) + "\n"
    if not args:
        raise VmrunError("Invalid arguments")
    vmx = Path(args[0]).resolve()
    values = load(vmx)
    vm = qemu(vmx)
    vmsd_path = vmx.with_suffix(".vmsd")
    vmsd = vmxfile.read(vmsd_path)
    nodes = tree(vmsd)
    current = vmsd.get("snapshot.current")
    last_uid = int(vmsd.get("snapshot.lastUID", "0"))
    if cmd == "start":
        if vm.alive():
            raise VmrunError("The virtual machine is already running")  # not a VIX text, but vmrun refuses
        checkpoint = values.get("checkpoint.vmState")
        incoming = vmx.parent / checkpoint if checkpoint else None
        boot(vmx, values, incoming if incoming and incoming.exists() else None)
        if checkpoint:
            values.pop("checkpoint.vmState")
            vmxfile.write(vmx, values)
            if incoming:
                incoming.unlink(missing_ok=True)
        mark_running(vmx)
        return ""
    if cmd == "stop":
        if not vm.alive():
            raise VmrunError("The virtual machine is not powered on: " + str(vmx))
        if len(args) > 1 and args[1] == "soft":
            vm.power_button()
            vm.wait_off(120)
        else:
            vm.kill()
        return ""
    if cmd == "suspend":
        if not vm.alive():
            raise VmrunError("The virtual machine is not powered on: " + str(vmx))
        state = f"{vmx.stem}.vmss"
        vm.save_memory(vmx.parent / state, keep_running=False)
        values["checkpoint.vmState"] = state
        vmxfile.write(vmx, values)
        return ""
    if cmd == "deleteVM":
        if vm.alive():
            raise VmrunError("The virtual machine should not be powered on. It is already running.")
        return ""
    if cmd == "listSnapshots":
        show_tree = len(args) > 1 and args[1] == "showTree"
        lines = [f"Total snapshots: {len(nodes)}"]

        def walk(parent: str | None, depth: int) -> None:
            for uid, node in nodes.items():
                if node.get("parent") == parent:
                    lines.append(("\t" * depth if show_tree else "") + node["displayName"])
                    walk(uid, depth + 1)

        walk(None, 0)
        return "\n".join(lines) + "\n"
    if cmd == "snapshot":
        if len(args) < 2:
            raise VmrunError("Invalid arguments")
        uid = str(last_uid + 1)
        node = {"uid": uid, "displayName": args[1], "description": "", "type": "1"}
        if current:
            node["parent"] = current
        was_running = vm.alive()
        node["filename"] = f"{vmx.stem}-Snapshot{uid}.vmsn"
        kind = "with memory" if was_running else "powered off"
        (vmx.parent / node["filename"]).write_text(f"vmsn checkpoint of snapshot {uid} ({kind})\n")
        if was_running:
            vm.save_memory(vmx.parent / memory_of(node), keep_running=False)
        for index, disk_node in enumerate(disk_nodes(values)):
            frozen = values[f"{disk_node}.fileName"]
            node[f"disk{index}.fileName"] = frozen
            node[f"disk{index}.node"] = disk_node
            values[f"{disk_node}.fileName"] = make_delta(vmx.parent, frozen)
        node["numDisks"] = str(len(disk_nodes(values)))
        nodes[uid] = node
        vmxfile.write(vmx, values)
        write_tree(vmsd_path, nodes, uid, last_uid + 1)
        if was_running:
            copy = vmx.parent / f".resume-{uid}.vmss"
            copy.write_bytes((vmx.parent / memory_of(node)).read_bytes())
            boot(vmx, values, copy)
            copy.unlink(missing_ok=True)
            mark_running(vmx)
        return ""
    if cmd == "revertToSnapshot":
        uid = find(nodes, args[1])
        node = nodes[uid]
        if vm.alive():
            vm.kill()
        referenced = {v for n in nodes.values() for k, v in n.items() if k.endswith(".fileName")}
        for index, disk_node in enumerate(disk_nodes(values)):
            old = values[f"{disk_node}.fileName"]
            values[f"{disk_node}.fileName"] = make_delta(vmx.parent, node[f"disk{index}.fileName"])
            if old not in referenced:
                (vmx.parent / old).unlink(missing_ok=True)
        values.pop("checkpoint.vmState", None)
        vmxfile.write(vmx, values)
        write_tree(vmsd_path, nodes, uid, last_uid)
        if (vmx.parent / memory_of(node)).exists():
            copy = vmx.parent / f".resume-{uid}.vmss"
            copy.write_bytes((vmx.parent / memory_of(node)).read_bytes())
            boot(vmx, values, copy)
            copy.unlink(missing_ok=True)
            mark_running(vmx)
        return ""
    if cmd == "deleteSnapshot":
        uid = find(nodes, args[1])
        node = nodes.pop(uid)
        for other in nodes.values():
            if other.get("parent") == uid:
                if node.get("parent"):
                    other["parent"] = node["parent"]
                else:
                    other.pop("parent", None)
        if current == uid:
            current = node.get("parent")
        in_use = {v for n in nodes.values() for k, v in n.items() if k.endswith(".fileName")}
        in_use |= {values[f"{d}.fileName"] for d in disk_nodes(values)}
        for key, frozen in node.items():
            if key.endswith(".fileName") and frozen not in in_use and not _has_children(vmx.parent, frozen):
                (vmx.parent / frozen).unlink(missing_ok=True)
        for leftover in (node.get("filename"), memory_of(node)):
            if leftover:
                (vmx.parent / leftover).unlink(missing_ok=True)
        write_tree(vmsd_path, nodes, current, last_uid)
        return ""
    raise VmrunError(f"Unrecognized command: {cmd}")


def _has_children(vmdir: Path, name: str) -> bool:
    for other in vmdir.glob("*.vmdk"):
        with open(other, "rb") as f:
            head = f.read(4096)
        if f'parentFileNameHint="{name}"'.encode() in head:
            return True
    return False


def main(argv: list[str]) -> int:
    if argv[:1] == ["-T"]:
        if len(argv) < 2 or argv[1] not in ("ws", "player", "fusion", "server", "server1", "esx", "vc"):
            sys.stdout.write("Error: Unrecognized host type\n")
            return 255
        argv = argv[2:]
    auth: dict[str, str] = {}
    while len(argv) >= 2 and argv[0] in ("-gu", "-gp", "-vp", "-h", "-u", "-p", "-P"):
        auth[argv[0]] = argv[1]
        argv = argv[2:]
    if argv and argv[0] in vmrun_guest.GUEST_COMMANDS:  # outside the lock: a guest program may run for long
        return vmrun_guest.main(argv[0], argv[1:], auth.get("-gu"), auth.get("-gp"))
    if not argv:
        sys.stdout.write(f"\n{VERSION}\n\nUsage: vmrun [AUTHENTICATION-FLAGS] COMMAND [PARAMETERS]\n")
        return 255
    home = Path(os.environ.get("VMRUN_SIM_HOME", Path.home() / ".vmrun-sim"))
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            sys.stdout.write(command(argv[0], argv[1:]))
        except VmrunError as exc:
            sys.stdout.write(f"Error: {exc}\n")
            return 255
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
