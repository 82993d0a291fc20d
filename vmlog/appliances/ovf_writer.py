"""Writing an OVF 1.0 descriptor for one VM, laid out as VirtualBox exports it so VirtualBox imports it.

The structure follows DMTF DSP0243 1.1 and the descriptors VirtualBox itself writes
(tests/fixtures/real/ova): References, DiskSection, NetworkSection, then one VirtualSystem with its
OperatingSystemSection and VirtualHardwareSection (CPUs, memory, a SATA controller with the disks
on it, a NAT network card). Disks are streamOptimized VMDKs, the format every OVF importer reads.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from vmlog.appliances.ovf import RASD, STREAM_OPTIMIZED, VSSD

OVF1 = "http://schemas.dmtf.org/ovf/envelope/1"
VBOX = "http://www.virtualbox.org/ovf/machine"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# CIM_OperatingSystem OsType 101: "Linux 2.6.x 64-Bit", what VirtualBox writes for Linux26_64.
LINUX_64_OS_ID = "101"


@dataclass(frozen=True)
class ExportDisk:
    """A disk file of the package: its name, size in the package and the capacity the guest sees."""

    href: str
    file_size: int
    capacity: int


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _item(parent: ET.Element, instance: int, resource: str, caption: str, **fields: str) -> ET.Element:
    """A ``rasd:`` Item; children are written in the alphabetical order the CIM schema's sequence wants."""
    item = ET.SubElement(parent, _q(OVF1, "Item"))
    values = {"Caption": caption, "ElementName": caption, "InstanceID": str(instance), "ResourceType": resource,
              **fields}  # fmt: skip
    for key in sorted(values):
        ET.SubElement(item, _q(RASD, key)).text = values[key]
    return item


def build_descriptor(
    name: str,
    disks: list[ExportDisk],
    *,
    cpus: int,
    memory_mib: int,
    annotation: str = "",
) -> bytes:
    """The ``.ovf`` of one VM named ``name`` with ``disks`` (system disk first) on a SATA controller."""
    for prefix, ns in (("ovf", OVF1), ("rasd", RASD), ("vssd", VSSD), ("xsi", XSI), ("vbox", VBOX)):
        ET.register_namespace(prefix, ns)
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    root = ET.Element(_q(OVF1, "Envelope"), {_q(OVF1, "version"): "1.0", lang: "en-US"})
    refs = ET.SubElement(root, _q(OVF1, "References"))
    section = ET.SubElement(root, _q(OVF1, "DiskSection"))
    ET.SubElement(section, _q(OVF1, "Info")).text = "List of the virtual disks used in the package"
    for index, disk in enumerate(disks, 1):
        ET.SubElement(refs, _q(OVF1, "File"), {_q(OVF1, "href"): disk.href, _q(OVF1, "id"): f"file{index}",
                                              _q(OVF1, "size"): str(disk.file_size)})  # fmt: skip
        ET.SubElement(section, _q(OVF1, "Disk"), {
            _q(OVF1, "capacity"): str(disk.capacity), _q(OVF1, "diskId"): f"vmdisk{index}",
            _q(OVF1, "fileRef"): f"file{index}", _q(OVF1, "format"): STREAM_OPTIMIZED,
        })  # fmt: skip
    networks = ET.SubElement(root, _q(OVF1, "NetworkSection"))
    ET.SubElement(networks, _q(OVF1, "Info")).text = "Logical networks used in the package"
    network = ET.SubElement(networks, _q(OVF1, "Network"), {_q(OVF1, "name"): "NAT"})
    ET.SubElement(network, _q(OVF1, "Description")).text = "Logical network used by this appliance."
    system = ET.SubElement(root, _q(OVF1, "VirtualSystem"), {_q(OVF1, "id"): name})
    ET.SubElement(system, _q(OVF1, "Info")).text = "A virtual machine"
    ET.SubElement(system, _q(OVF1, "Name")).text = name
    if annotation:
        notes = ET.SubElement(system, _q(OVF1, "AnnotationSection"))
        ET.SubElement(notes, _q(OVF1, "Info")).text = "A human-readable annotation"
        ET.SubElement(notes, _q(OVF1, "Annotation")).text = annotation
    os_section = ET.SubElement(system, _q(OVF1, "OperatingSystemSection"), {_q(OVF1, "id"): LINUX_64_OS_ID})
    ET.SubElement(os_section, _q(OVF1, "Info")).text = "The kind of installed guest operating system"
    ET.SubElement(os_section, _q(OVF1, "Description")).text = "Linux26_64"
    _hardware(system, name, disks, cpus, memory_mib)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    # As VirtualBox writes it: OVF elements in the default namespace, OVF attributes with the ovf: prefix.
    text = re.sub(r"<(/?)ovf:", r"<\1", text).replace("<Envelope ", f'<Envelope xmlns="{OVF1}" ', 1)
    return b'<?xml version="1.0"?>\n' + text.encode("utf-8") + b"\n"


def _hardware(system: ET.Element, name: str, disks: list[ExportDisk], cpus: int, memory_mib: int) -> None:
    hardware = ET.SubElement(system, _q(OVF1, "VirtualHardwareSection"))
    ET.SubElement(hardware, _q(OVF1, "Info")).text = "Virtual hardware requirements for a virtual machine"
    vsys = ET.SubElement(hardware, _q(OVF1, "System"))
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                       ("VirtualSystemIdentifier", name), ("VirtualSystemType", "virtualbox-2.2")):  # fmt: skip
        ET.SubElement(vsys, _q(VSSD, key)).text = value
    _item(hardware, 1, "3", f"{cpus} virtual CPU", Description="Number of virtual CPUs", VirtualQuantity=str(cpus))
    _item(hardware, 2, "4", f"{memory_mib} MB of memory", AllocationUnits="MegaBytes", Description="Memory Size",
          VirtualQuantity=str(memory_mib))  # fmt: skip
    _item(hardware, 3, "20", "sataController0", Address="0", Description="SATA Controller", ResourceSubType="AHCI")
    for index, _disk in enumerate(disks, 1):
        _item(hardware, 3 + index, "17", f"disk{index}", AddressOnParent=str(index - 1), Description="Disk Image",
              HostResource=f"/disk/vmdisk{index}", Parent="3")  # fmt: skip
    _item(hardware, 4 + len(disks), "10", "Ethernet adapter on 'NAT'", AutomaticAllocation="true", Connection="NAT",
          ResourceSubType="E1000")  # fmt: skip
