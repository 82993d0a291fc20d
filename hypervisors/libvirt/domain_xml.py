"""VMSpec -> libvirt domain XML (xml.etree), and reading a domain's XML back (spec, disk tops).

The VMSpec travels inside the domain's ``<metadata>`` under vmlog's namespace, so a domain says
which disk is which (labels) and can be redefined from what libvirt holds.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from hypervisors.base import DisplayEndpoint
from hypervisors.errors import Unsupported
from hypervisors.spec import DiskSpec, NicSpec, SharedFolder, VMSpec

BACKEND = "kvm"
VMLOG_NS = "https://vmlog.org/xmlns/libvirt/domain/1"
VMLOG_PREFIX = "vmlog"
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
ET.register_namespace(VMLOG_PREFIX, VMLOG_NS)
ET.register_namespace("qemu", QEMU_NS)

UNIX_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes including the terminating NUL
MACHINES = ("q35", "pc")
NIC_PCI_SLOT_BASE = 0x10  # above the slots libvirt hands out, so hand-wired NICs never collide
DISPLAY_LISTEN = "127.0.0.1"  # the VM's screen is served to this host only
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"  # the virtio-serial port name qemu-ga opens in the guest


@dataclass(frozen=True)
class DomainOptions:
    """What the backend decides beyond the spec: accelerator, QEMU's user, the domain's UUID."""

    domain_type: str = "qemu"  # "kvm", "qemu" (TCG), or the type of another driver ("test")
    dac_label: str | None = None  # "+UID:+GID": QEMU runs as this user (local system daemon)
    uuid: str | None = None  # kept on redefine, else libvirt refuses the new definition
    spice: bool = False  # the host's QEMU has SPICE: the screen is served by SPICE too (for remote-viewer)


def disk_targets(spec: VMSpec) -> list[tuple[DiskSpec, str, str]]:
    """Each disk with its target device and bus, in spec order: vda, vdb... (virtio); sda... (SCSI).

    CD-ROMs sit on a virtio-scsi controller rather than SATA: minimal appliance kernels (Debian's
    cloud kernel among them) have virtio-scsi but no AHCI driver, and every full kernel has both.
    """
    result: list[tuple[DiskSpec, str, str]] = []
    virtio = scsi = 0
    for disk in spec.disks:
        if disk.device == "cdrom":
            result.append((disk, "sd" + _letters(scsi), "scsi"))
            scsi += 1
        else:
            result.append((disk, "vd" + _letters(virtio), "virtio"))
            virtio += 1
    return result


def _letters(index: int) -> str:
    text = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        text = chr(ord("a") + rem) + text
    return text


def stable_mac(vm_name: str, index: int) -> str:
    """A MAC address that stays the same across redefinitions of the same VM."""
    digest = hashlib.sha256(f"{vm_name}/{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def _abs(path: Path) -> str:
    return str(Path(path).absolute())


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def check_spec(spec: VMSpec) -> None:
    """Raise ``Unsupported`` for what this backend cannot express (before libvirt sees it)."""
    if spec.channel_socket is not None and len(_abs(spec.channel_socket).encode()) > UNIX_SOCKET_PATH_MAX:
        raise Unsupported(
            f"channel socket path {spec.channel_socket} is longer than {UNIX_SOCKET_PATH_MAX} bytes,"
            " the limit of a Unix socket path",
            fix="use a shorter VMLOG_HOME (the socket lives under it)", backend=BACKEND,
        )
    machine = spec.extra.get("machine", "q35")
    if machine not in MACHINES:
        raise Unsupported(f"unknown machine type {machine!r}", fix=f"choose one of {', '.join(MACHINES)}",
                          backend=BACKEND)
    labels = [d.label for d in spec.disks if d.label]
    if len(labels) != len(set(labels)):
        raise Unsupported(f"VM {spec.name!r} has two disks with the same label",
                          fix="give each disk of a VM its own label", backend=BACKEND)


def build_domain_xml(spec: VMSpec, options: DomainOptions) -> str:
    """The full ``<domain>`` document for ``spec``."""
    check_spec(spec)
    machine = spec.extra.get("machine", "q35")
    domain = ET.Element("domain", {"type": options.domain_type})
    _sub(domain, "name", spec.name)
    if options.uuid:
        _sub(domain, "uuid", options.uuid)
    metadata = _sub(domain, "metadata")
    _sub(metadata, f"{{{VMLOG_NS}}}spec", json.dumps(spec.to_dict(), sort_keys=True))
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.cpus))
    if spec.shared_folders:  # virtiofs needs guest memory the virtiofsd process can map
        backing = _sub(domain, "memoryBacking")
        _sub(backing, "source", type_="memfd")
        _sub(backing, "access", mode="shared")

    os_el = _sub(domain, "os", firmware="efi") if spec.firmware == "efi" else _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=machine)
    kernel = spec.extra.get("kernel")
    if kernel:  # direct kernel boot, a hint used for appliances shipped as kernel + initrd
        _sub(os_el, "kernel", _abs(Path(kernel)))
        if spec.extra.get("initrd"):
            _sub(os_el, "initrd", _abs(Path(spec.extra["initrd"])))
        if spec.extra.get("cmdline"):
            _sub(os_el, "cmdline", str(spec.extra["cmdline"]))
    else:
        _sub(os_el, "boot", dev="hd")
        if any(d.device == "cdrom" for d in spec.disks):
            _sub(os_el, "boot", dev="cdrom")

    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if options.dac_label:
        seclabel = _sub(domain, "seclabel", type_="static", model="dac", relabel="no")
        _sub(seclabel, "label", options.dac_label)
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")

    devices = _sub(domain, "devices")
    if any(d.device == "cdrom" for d in spec.disks):
        _sub(devices, "controller", type_="scsi", index="0", model="virtio-scsi")
    for disk, dev, bus in disk_targets(spec):
        disk_el = _sub(devices, "disk", type_="file", device=disk.device)
        _sub(disk_el, "driver", name="qemu", type_=disk.format)  # explicit format: qemu never probes
        _sub(disk_el, "source", file=_abs(disk.path))
        _sub(disk_el, "target", dev=dev, bus=bus)
        if disk.readonly or disk.device == "cdrom":
            _sub(disk_el, "readonly")
    for folder in spec.shared_folders:
        devices.append(filesystem_element(folder))
    # The console is a pty (so `virsh console` can attach) whose output is also logged to a file.
    serial0 = _sub(devices, "serial", type_="pty")
    if spec.serial_log is not None:
        _sub(serial0, "log", file=_abs(spec.serial_log), append="on")
    _sub(serial0, "target", port="0")
    if spec.channel_socket is not None:
        serial1 = _sub(devices, "serial", type_="unix")
        _sub(serial1, "source", mode="bind", path=_abs(spec.channel_socket))
        _sub(serial1, "target", port="1")
    # The standard QEMU guest agent's channel: libvirt picks the socket and talks to qemu-ga itself
    # (qemuAgentCommand); a guest without qemu-ga simply leaves the port closed.
    agent = _sub(devices, "channel", type_="unix")
    _sub(agent, "source", mode="bind")
    _sub(agent, "target", type_="virtio", name=GUEST_AGENT_CHANNEL)
    console = _sub(devices, "console", type_=serial0.get("type", "pty"))
    _sub(console, "target", type_="serial", port="0")
    add_display(devices, spice=options.spice)
    _sub(devices, "memballoon", model="none")
    if spec.nics:
        _add_user_nics(domain, spec.name, spec.nics, machine)
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def add_display(devices: ET.Element, *, spice: bool = False) -> None:
    """The VM's screen: a standard VGA card shown by a VNC server on 127.0.0.1 (a free port from 5900 up).

    VNC is built into every QEMU, so the definition never depends on optional QEMU modules; the
    loopback address keeps the screen off the network (viewers on this host, or through SSH). A USB
    tablet gives the guest absolute pointer positions, so a viewer's mouse and the guest's agree.
    With ``spice`` (only where the host's QEMU has it: it is an optional module), a SPICE server shows
    the same screen as well, for ``remote-viewer``; VNC stays first, the one the window embeds. A
    display server is no guest device, so a memory image restores whichever servers the definition has.
    """
    graphics = _sub(devices, "graphics", type_="vnc", port="-1", autoport="yes", listen=DISPLAY_LISTEN)
    _sub(graphics, "listen", type_="address", address=DISPLAY_LISTEN)
    if spice:
        graphics = _sub(devices, "graphics", type_="spice", port="-1", autoport="yes", listen=DISPLAY_LISTEN)
        _sub(graphics, "listen", type_="address", address=DISPLAY_LISTEN)
    tablet = _sub(devices, "input", type_="tablet", bus="usb")
    # Its address given, as libvirt would assign it: a memory image restores only into a definition whose
    # USB addresses match the saved one, and libvirt fills USB addresses in at start, not on define.
    _sub(tablet, "address", type_="usb", bus="0", port="1")
    video = _sub(devices, "video")
    _sub(video, "model", type_="vga", vram="16384", heads="1", primary="yes")


def display_endpoint(domain_xml: str) -> DisplayEndpoint | None:
    """Where the running domain's (live XML's) first VNC or SPICE server listens; None if it has none yet."""
    found = display_endpoints(domain_xml)
    return found[0] if found else None


def display_endpoints(domain_xml: str) -> list[DisplayEndpoint]:
    """Every VNC and SPICE server of the running domain (live XML), in definition order; those not started
    (or on a driver that runs no server, like libvirt's test driver) are left out."""
    root = ET.fromstring(domain_xml)
    found: list[DisplayEndpoint] = []
    for graphics in root.findall("devices/graphics"):
        protocol = graphics.get("type", "")
        if protocol not in ("vnc", "spice"):
            continue
        listen = graphics.find("listen")
        socket = graphics.get("socket") or (listen.get("socket") if listen is not None else None)
        if socket:
            found.append(DisplayEndpoint(protocol, socket=Path(socket)))
            continue
        port = int(graphics.get("port", "-1") or -1)
        if port <= 0:
            continue
        host = graphics.get("listen") or (listen.get("address") if listen is not None else None) or DISPLAY_LISTEN
        found.append(DisplayEndpoint(protocol, host=host, port=port))
    return found


def offers_graphics(domain_capabilities: ET.Element | None, protocol: str) -> bool:
    """Whether QEMU's domain capabilities (``virsh domcapabilities``) list ``protocol`` among its graphics."""
    if domain_capabilities is None:
        return False
    graphics = domain_capabilities.find("devices/graphics")
    if graphics is None or graphics.get("supported") != "yes":
        return False
    return protocol in [value.text for value in graphics.findall("enum[@name='type']/value")]


def filesystem_element(folder: SharedFolder) -> ET.Element:
    """The virtiofs ``<filesystem>`` device of a share: in a definition, and alone for hot-plug.

    libvirt 9.0 with QEMU's C virtiofsd has no read-only mode: readonly is the guest's mount option.
    """
    fs = ET.Element("filesystem", {"type": "mount", "accessmode": "passthrough"})
    _sub(fs, "driver", type_="virtiofs")
    _sub(fs, "source", dir=_abs(folder.host_path))
    _sub(fs, "target", dir=folder.tag)
    return fs


def filesystem_xml(folder: SharedFolder) -> str:
    """The device XML ``virDomainAttachDeviceFlags``/``DetachDeviceFlags`` take for a share."""
    return ET.tostring(filesystem_element(folder), encoding="unicode")


def _add_user_nics(domain: ET.Element, vm_name: str, nics: tuple[NicSpec, ...], machine: str) -> None:
    """User-mode NICs with host port forwards, wired on QEMU's command line.

    libvirt 9.0 can forward ports only through its passt backend, which this libvirt build
    rejects; QEMU's own user network (slirp) takes ``hostfwd`` rules directly.
    """
    commandline = ET.SubElement(domain, f"{{{QEMU_NS}}}commandline")
    bus = "pcie.0" if machine == "q35" else "pci.0"
    for index, nic in enumerate(nics):
        netdev = f"user,id=vmlnet{index}"
        for fwd in nic.forwards:
            netdev += f",hostfwd={fwd.protocol}:{fwd.host_address}:{fwd.host_port}-:{fwd.guest_port}"
        model = "virtio-net-pci" if nic.model == "virtio" else nic.model
        mac = nic.mac or stable_mac(vm_name, index)
        device = f"{model},netdev=vmlnet{index},mac={mac},bus={bus},addr={NIC_PCI_SLOT_BASE + index:#x}"
        for value in ("-netdev", netdev, "-device", device):
            ET.SubElement(commandline, f"{{{QEMU_NS}}}arg", {"value": value})


def read_spec(domain_xml: str) -> VMSpec | None:
    """The VMSpec stored in a domain's metadata (None for a domain vmlog did not define)."""
    root = ET.fromstring(domain_xml)
    element = root.find(f"metadata/{{{VMLOG_NS}}}spec")
    if element is None or not element.text:
        return None
    return VMSpec.from_dict(json.loads(element.text))


def metadata_element(spec: VMSpec) -> str:
    """The metadata element alone, for ``virDomainSetMetadata`` after a live disk swap."""
    element = ET.Element("spec")
    element.text = json.dumps(spec.to_dict(), sort_keys=True)
    return ET.tostring(element, encoding="unicode")


def disk_sources(domain_xml: str) -> dict[str, Path]:
    """Target device -> the file libvirt says the disk writes into now."""
    root = ET.fromstring(domain_xml)
    result: dict[str, Path] = {}
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        if target is not None and source is not None and source.get("file"):
            result[target.get("dev", "")] = Path(source.get("file", ""))
    return result


def disk_tops(domain_xml: str) -> dict[str, Path]:
    """Disk label -> current top file, for the disks of a domain vmlog defined."""
    spec = read_spec(domain_xml)
    if spec is None:
        return {}
    sources = disk_sources(domain_xml)
    return {
        (disk.label or dev): sources[dev]
        for disk, dev, _bus in disk_targets(spec)
        if disk.device == "disk" and dev in sources
    }


def snapshot_xml(spec: VMSpec, label: str, new_top: Path) -> str:
    """A disk-only external snapshot moving the ``label`` disk onto ``new_top``, every other disk untouched."""
    root = ET.Element("domainsnapshot")
    _sub(root, "description", f"vmlog: disk {label} onto {Path(new_top).name}")
    disks = _sub(root, "disks")
    found = False
    for disk, dev, _bus in disk_targets(spec):
        if disk.label == label and disk.device == "disk":
            found = True
            disk_el = _sub(disks, "disk", name=dev, snapshot="external", type_="file")
            _sub(disk_el, "driver", type_="qcow2")
            _sub(disk_el, "source", file=_abs(new_top))
        else:
            _sub(disks, "disk", name=dev, snapshot="no")
    if not found:
        raise KeyError(label)
    return ET.tostring(root, encoding="unicode")


def with_disk_path(spec: VMSpec, label: str, new_top: Path) -> VMSpec:
    """``spec`` with the ``label`` disk pointing at ``new_top`` (now a qcow2 overlay)."""
    disks = []
    found = False
    for disk in spec.disks:
        if disk.label == label and disk.device == "disk":
            found = True
            disk = DiskSpec(path=Path(new_top).absolute(), format="qcow2", device=disk.device,
                            readonly=disk.readonly, label=disk.label)
        disks.append(disk)
    if not found:
        raise KeyError(label)
    return spec.replace(disks=tuple(disks))


def hardware_differs(old: VMSpec, new: VMSpec) -> bool:
    """True if a saved memory state of ``old`` cannot continue on ``new`` (the guest would see a change)."""
    def hardware(spec: VMSpec) -> object:
        data = spec.to_dict()
        data.pop("extra", None)
        data.pop("serial_log", None)
        return data
    return hardware(old) != hardware(new) or old.extra.get("machine") != new.extra.get("machine")
