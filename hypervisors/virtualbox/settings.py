"""The neutral VM spec as VirtualBox settings: the VBoxManage commands that define a VM, and the
control interface both the VBoxManage and Main API paths implement.

Every option used here is documented in the VirtualBox manual, chapter 8 (``modifyvm``: 8.8,
``storagectl``: 8.19, ``storageattach``: 8.18, ``sharedfolder``: 8.31, ``setextradata``: 8.32) and
exists since VirtualBox 6.1 (the old spellings such as ``--natpf1`` are kept by 7.x).
"""

from __future__ import annotations

from typing import Protocol

from hypervisors.base import VMState
from hypervisors.errors import Unsupported
from hypervisors.spec import DiskSpec, VMSpec

CONTROLLER = "SATA"
# CD-ROMs go on an IDE (PIIX4) controller, secondary master first, as VirtualBox's own new-VM defaults
# do: every guest kernel has an IDE driver, not all have AHCI.
CDROM_CONTROLLER = "IDE"
CDROM_SLOTS = ((1, 0), (1, 1), (0, 0), (0, 1))
# COM1 carries the console, COM2 the agent channel: the standard PC I/O ports and IRQs.
UART_CONSOLE = ("0x3F8", "4")
UART_CHANNEL = ("0x2F8", "3")


def nic_type(model: str) -> str:
    return "virtio" if model == "virtio" else "82540EM"


def nat_rules(spec: VMSpec) -> list[str]:
    """``name,proto,hostip,hostport,guestip,guestport`` rules for NIC 1 (VirtualBox NAT)."""
    rules = []
    for nic in spec.nics[:1]:
        for fwd in nic.forwards:
            rules.append(
                f"{fwd.protocol}{fwd.host_port},{fwd.protocol},{fwd.host_address},{fwd.host_port},,{fwd.guest_port}"
            )
    return rules


def hard_disk_ports(spec: VMSpec) -> list[tuple[int, DiskSpec]]:
    """(SATA port, disk) of each hard disk, in spec order."""
    return list(enumerate(d for d in spec.disks if d.device == "disk"))


def cdrom_slots(spec: VMSpec) -> list[tuple[tuple[int, int], DiskSpec]]:
    """((IDE port, device), drive) of each CD-ROM, in spec order."""
    cdroms = [d for d in spec.disks if d.device == "cdrom"]
    if len(cdroms) > len(CDROM_SLOTS):
        raise Unsupported(f"{spec.name} has more than {len(CDROM_SLOTS)} CD-ROMs", backend="virtualbox",
                          fix="IDE has four units: merge the images into fewer ISO files")
    return list(zip(CDROM_SLOTS, cdroms, strict=False))


def disk_slots(spec: VMSpec) -> dict[str, str]:
    """Label -> ``controller:port:device`` of each labelled hard disk, in spec order."""
    return {d.label: f"{CONTROLLER}:{port}:0" for port, d in hard_disk_ports(spec) if d.label}


def define_commands(spec: VMSpec, *, with_storage: bool = True, first_time: bool = True) -> list[list[str]]:
    """VBoxManage argument lists that turn a fresh VM into ``spec`` (or update a stopped one)."""
    name = spec.name
    modify = [
        "modifyvm", name,
        "--memory", str(spec.memory_mib),
        "--cpus", str(spec.cpus),
        "--firmware", spec.firmware,
        "--ioapic", "on",
        "--boot1", "disk", "--boot2", "dvd", "--boot3", "none", "--boot4", "none",
    ]
    if spec.nics:
        nic = spec.nics[0]
        modify += ["--nic1", "nat", "--nictype1", nic_type(nic.model), "--cableconnected1", "on"]
        if nic.mac:
            modify += ["--macaddress1", nic.mac.replace(":", "").upper()]
        for rule in nat_rules(spec):
            modify += ["--natpf1", rule]
    else:
        modify += ["--nic1", "none"]
    if spec.serial_log is not None:
        modify += ["--uart1", *UART_CONSOLE, "--uartmode1", "file", str(spec.serial_log)]
    if spec.channel_socket is not None:
        if spec.serial_log is None:
            modify += ["--uart1", *UART_CONSOLE, "--uartmode1", "disconnected"]
        modify += ["--uart2", *UART_CHANNEL, "--uartmode2", "server", str(spec.channel_socket)]
    commands = [modify]
    if with_storage:
        if first_time:
            commands.append(["storagectl", name, "--name", CONTROLLER, "--add", "sata", "--controller", "IntelAhci",
                             "--portcount", str(max(2, len(spec.disks))), "--bootable", "on"])
            commands.append(["storagectl", name, "--name", CDROM_CONTROLLER, "--add", "ide", "--controller",
                             "PIIX4", "--bootable", "on"])
        for port, disk in hard_disk_ports(spec):
            # never write into vmlog's file: VirtualBox adds its own differencing image on top
            mtype = "immutable" if disk.readonly else "multiattach"
            commands.append(["storageattach", name, "--storagectl", CONTROLLER, "--port", str(port), "--device",
                             "0", "--type", "hdd", "--medium", str(disk.path), "--mtype", mtype])
        for (port, device), disk in cdrom_slots(spec):
            commands.append(["storageattach", name, "--storagectl", CDROM_CONTROLLER, "--port", str(port),
                             "--device", str(device), "--type", "dvddrive", "--medium", str(disk.path)])
    for folder in spec.shared_folders:
        share = ["sharedfolder", "add", name, "--name", folder.tag, "--hostpath", str(folder.host_path), "--automount"]
        if folder.readonly:
            share.append("--readonly")
        commands.append(share)
    return commands


class ControlChannel(Protocol):
    """Runtime control of VMs: implemented over VBoxManage and over the Main API (vboxapi)."""

    api_name: str

    def state(self, name: str) -> VMState: ...
    def start(self, name: str) -> None: ...
    def power_button(self, name: str) -> None: ...
    def poweroff(self, name: str) -> None: ...
    def save_state(self, name: str) -> None: ...
    def discard_state(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def take_snapshot(self, name: str, snapshot_name: str, *, live: bool) -> str: ...
    def restore_snapshot(self, name: str, snapshot_id: str) -> None: ...
    def delete_snapshot(self, name: str, snapshot_id: str) -> None: ...
