"""An OVF 2.0 descriptor per archived state: its VM and the chain of disk files that makes each of its disks.

DSP0243 2.x lets a Disk name the disk it is a delta of (``ovf:parentRef``), which is exactly a qcow2
chain: the base image, then one Disk per layer, each pointing at the one below, and the virtual
hardware's disk item pointing at the top. File references are the unpacked member paths (the
archive stores them zstd-compressed as ``<href>.zst``), so a reader without vmlog unpacks, runs
``zstd -d``, and boots or converts the top file of the chain (docs/archive-format.md).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

OVF2 = "http://schemas.dmtf.org/ovf/envelope/2"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
QCOW2_FORMAT = "https://www.qemu.org/docs/master/interop/qcow2.html"
RAW_FORMAT = "https://www.qemu.org/docs/master/system/images.html#disk-image-file-formats"


@dataclass(frozen=True)
class ChainFile:
    """One file of a disk chain: its path once unpacked, its format, its capacity in bytes."""

    href: str
    format: str
    capacity: int


def _q(name: str, ns: str = OVF2) -> str:
    return f"{{{ns}}}{name}"


def _format_uri(fmt: str) -> str:
    return QCOW2_FORMAT if fmt == "qcow2" else f"{RAW_FORMAT}#{fmt}"


def _item(parent: ET.Element, instance: int, resource: str, name: str, **fields: str) -> None:
    item = ET.SubElement(parent, _q("Item"))
    values = {"ElementName": name, "InstanceID": str(instance), "ResourceType": resource, **fields}
    for key in sorted(values):
        ET.SubElement(item, _q(key, RASD)).text = values[key]


def state_descriptor(
    name: str, chains: dict[str, list[ChainFile]], *, cpus: int, memory_mib: int, annotation: str = ""
) -> bytes:
    """The ``.ovf`` of one state: ``chains`` maps each disk label to its files, base first, top last."""
    for prefix, ns in (("ovf", OVF2), ("rasd", RASD), ("vssd", VSSD)):
        ET.register_namespace(prefix, ns)
    root = ET.Element(_q("Envelope"), {_q("version"): "2.0"})
    refs = ET.SubElement(root, _q("References"))
    disks = ET.SubElement(root, _q("DiskSection"))
    ET.SubElement(disks, _q("Info")).text = "Each disk as a chain: a base image and qcow2 delta layers on it"
    tops: list[tuple[str, str]] = []
    for label, files in chains.items():
        parent = None
        for depth, file in enumerate(files):
            file_id = f"{label}-{depth}"
            ET.SubElement(refs, _q("File"), {_q("href"): file.href, _q("id"): f"file-{file_id}"})
            attrs = {_q("capacity"): str(file.capacity), _q("diskId"): f"disk-{file_id}",
                     _q("fileRef"): f"file-{file_id}", _q("format"): _format_uri(file.format)}
            if parent is not None:
                attrs[_q("parentRef")] = parent
            ET.SubElement(disks, _q("Disk"), attrs)
            parent = f"disk-{file_id}"
        if parent is not None:
            tops.append((label, parent))
    system = ET.SubElement(root, _q("VirtualSystem"), {_q("id"): name})
    ET.SubElement(system, _q("Info")).text = "A virtual machine saved by vmlog"
    ET.SubElement(system, _q("Name")).text = name
    if annotation:
        notes = ET.SubElement(system, _q("AnnotationSection"))
        ET.SubElement(notes, _q("Info")).text = "The state's message"
        ET.SubElement(notes, _q("Annotation")).text = annotation
    hardware = ET.SubElement(system, _q("VirtualHardwareSection"))
    ET.SubElement(hardware, _q("Info")).text = "Virtual hardware requirements"
    vsys = ET.SubElement(hardware, _q("System"))
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                       ("VirtualSystemIdentifier", name), ("VirtualSystemType", "vmx-07 qemu-pc")):  # fmt: skip
        ET.SubElement(vsys, _q(key, VSSD)).text = value
    _item(hardware, 1, "3", f"{cpus} virtual CPU", VirtualQuantity=str(cpus))
    _item(hardware, 2, "4", f"{memory_mib} MB of memory", AllocationUnits="byte * 2^20",
          VirtualQuantity=str(memory_mib))
    _item(hardware, 3, "20", "virtio-blk or SATA controller", Address="0", ResourceSubType="AHCI")
    for index, (label, disk_id) in enumerate(tops):
        _item(hardware, 4 + index, "17", f"disk {label}", AddressOnParent=str(index), Parent="3",
              HostResource=f"ovf:/disk/{disk_id}")
    ET.indent(root)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"
