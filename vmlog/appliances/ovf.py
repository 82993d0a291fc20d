"""OVF descriptors (DMTF DSP0243, versions 1.x and 2.x) and ``.mf`` manifests: reading them safely.

An OVF descriptor comes from outside (an OVA, a VirtualBox box's ``box.ovf``): it is parsed with the
standard library's expat (which bounds entity expansion) after refusing any DOCTYPE, so no entity
and no external reference is ever resolved. Only what vmlog uses is read: the files, the disks and
the order the hardware section attaches them, CPUs and memory. VirtualBox writes OVF 1.0 with
``rasd:`` items and OVF 2.0 with ``StorageItem``/``EthernetPortItem``; VMware writes ``ovf:/disk/ID``
host resources and capacities with allocation units; both are read the same way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import PurePosixPath

from vmlog.errors import IntegrityError, InvalidInput

MAX_DESCRIPTOR_BYTES = 4 << 20
MAX_MANIFEST_BYTES = 1 << 20
OVF_NAMESPACES = {
    "http://schemas.dmtf.org/ovf/envelope/1": "1.x",
    "http://schemas.dmtf.org/ovf/envelope/2": "2.x",
}
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
SASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData.xsd"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
# CIM resource types (DSP1041) vmlog reads.
RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_CDROM, RESOURCE_DISK = "3", "4", "15", "17"
_MANIFEST_LINE = re.compile(r"^\s*(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$")
_UNITS = re.compile(r"^\s*byte\s*(?:\*\s*(\d+)\s*\^\s*(\d+))?\s*$", re.IGNORECASE)
_NAMED_UNITS = {"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20, "gigabytes": 1 << 30, "kb": 1 << 10,
                "mb": 1 << 20, "gb": 1 << 30}  # fmt: skip
_HASH_LENGTHS = {"sha1": 40, "sha256": 64, "sha512": 128}


@dataclass(frozen=True)
class OvfDisk:
    """One virtual disk of the descriptor: its id, the package file holding it, capacity and format URI."""

    disk_id: str
    href: str
    capacity: int  # bytes
    format: str  # e.g. ...vmdk.html#streamOptimized
    file_size: int | None = None


@dataclass(frozen=True)
class OvfDescriptor:
    """What vmlog reads of one descriptor; ``disks`` are in attachment order, the system disk first."""

    version: str  # "1.x" or "2.x" (the envelope namespace)
    name: str
    disks: tuple[OvfDisk, ...]
    files: tuple[str, ...]  # every href of the References section
    cpus: int | None = None
    memory_mib: int | None = None
    os_description: str = ""
    cdroms: tuple[OvfDisk, ...] = ()  # ISO images the package carries (not imported)


def _bad(source: str, message: str) -> IntegrityError:
    return IntegrityError(f"{source}: {message}", fix="the OVF package is damaged or not one vmlog can read")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: ET.Element, name: str, ns: str) -> str | None:
    """An OVF attribute, qualified (``ovf:href``) as the spec writes it, or unqualified as some tools do."""
    return element.get(f"{{{ns}}}{name}", element.get(name))


def safe_href(source: str, href: str) -> str:
    """A package file name: relative, inside the package, no URL (``http://``, ``file:``)."""
    parts = [p for p in PurePosixPath(href).parts if p not in ("", ".")]
    if not href or ":" in href or href.startswith("/") or ".." in parts or not parts:
        raise _bad(source, f"file reference {href[:80]!r} points outside the package; refused")
    return "/".join(parts)


def _capacity(source: str, value: str | None, units: str | None) -> int:
    if value is None or not value.strip().isdigit():
        raise _bad(source, f"disk capacity {value!r} is not a number of bytes")
    factor = 1
    if units:
        match = _UNITS.match(units)
        if match and match.group(1):
            factor = int(match.group(1)) ** int(match.group(2))
        elif not match:
            factor = _NAMED_UNITS.get(units.strip().lower(), 0)
            if not factor:
                raise _bad(source, f"unknown capacity units {units!r}")
    return int(value) * factor


def parse_ovf(data: bytes, *, source: str = "descriptor") -> OvfDescriptor:
    """Read an OVF descriptor; ``IntegrityError`` when it is not one, ``InvalidInput`` for what vmlog cannot import."""
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise _bad(source, f"descriptor is larger than {MAX_DESCRIPTOR_BYTES} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _bad(source, "descriptor declares a DOCTYPE or entities; refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise _bad(source, f"not XML: {exc}") from exc
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if _local(root.tag) != "Envelope" or ns not in OVF_NAMESPACES:
        raise _bad(source, "not an OVF envelope (DMTF OVF 1.x or 2.x)")
    files = {}
    for element in root.iterfind(f"{{{ns}}}References/{{{ns}}}File"):
        if _attr(element, "compression", ns) or _attr(element, "chunkSize", ns):
            raise InvalidInput(f"{source}: compressed or chunked package files are not supported")
        size = _attr(element, "size", ns)
        files[_attr(element, "id", ns) or ""] = (safe_href(source, _attr(element, "href", ns) or ""), size)
    disks = {}
    for element in root.iterfind(f"{{{ns}}}DiskSection/{{{ns}}}Disk"):
        disk_id, file_ref = _attr(element, "diskId", ns) or "", _attr(element, "fileRef", ns)
        if file_ref is None:
            continue  # an empty disk the importer creates: nothing to import
        if file_ref not in files:
            raise _bad(source, f"disk {disk_id!r} names file {file_ref!r}, which References does not list")
        href, size = files[file_ref]
        capacity = _capacity(source, _attr(element, "capacity", ns), _attr(element, "capacityAllocationUnits", ns))
        disks[disk_id] = OvfDisk(disk_id, href, capacity, _attr(element, "format", ns) or "",
                                 int(size) if size and size.isdigit() else None)  # fmt: skip
    systems = root.findall(f".//{{{ns}}}VirtualSystem")
    if len(systems) != 1:
        raise InvalidInput(f"{source}: holds {len(systems)} virtual machines; vmlog imports packages of one")
    system = systems[0]
    attached, cpus, memory = _hardware(source, system, ns)
    order = [disks[d] for d in attached if d in disks] + [d for k, d in disks.items() if k not in attached]
    isos = tuple(d for d in order if _is_iso(d))
    name = system.findtext(f"{{{ns}}}Name") or _attr(system, "id", ns) or "ovf"
    os_text = system.findtext(f"{{{ns}}}OperatingSystemSection/{{{ns}}}Description") or ""
    return OvfDescriptor(OVF_NAMESPACES[ns], name.strip(), tuple(d for d in order if d not in isos),
                         tuple(h for h, _s in files.values()), cpus, memory, os_text.strip(), isos)  # fmt: skip


def _is_iso(disk: OvfDisk) -> bool:
    return "ecma-119" in disk.format.lower() or disk.href.lower().endswith(".iso")


def _hardware(source: str, system: ET.Element, ns: str) -> tuple[list[str], int | None, int | None]:
    """Disk ids in attachment order, CPU count and memory (MiB) from the VirtualHardwareSection."""
    attached: list[str] = []
    cpus = memory = None
    section = system.find(f"{{{ns}}}VirtualHardwareSection")
    if section is None:
        return attached, cpus, memory
    for item in section:
        kind = _local(item.tag)
        if kind not in ("Item", "StorageItem"):
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in item}
        resource = fields.get("ResourceType")
        if resource == RESOURCE_DISK:
            host = fields.get("HostResource", "")
            match = re.match(r"^(?:ovf:)?/disk/(.+)$", host)
            if match:
                attached.append(match.group(1))
        elif resource == RESOURCE_CPU and fields.get("VirtualQuantity", "").isdigit():
            cpus = int(fields["VirtualQuantity"])
        elif resource == RESOURCE_MEMORY and fields.get("VirtualQuantity", "").isdigit():
            units = fields.get("AllocationUnits", "byte * 2^20")
            memory = _capacity(source, fields["VirtualQuantity"], units) >> 20
    return attached, cpus, memory


def parse_manifest(data: bytes, *, source: str = "manifest") -> dict[str, tuple[str, str]]:
    """A ``.mf`` manifest: file name -> (algorithm, lowercase hex). Both VirtualBox's ``SHA1 (f) = h`` and
    VMware's ``SHA256(f)= h`` lines are read; any other line makes the manifest invalid."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise _bad(source, "manifest is too large")
    entries: dict[str, tuple[str, str]] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if not match:
            raise _bad(source, f"manifest line {line[:80]!r} is not 'ALGO (file) = digest'")
        algo, name, digest = match.group(1).lower(), match.group(2).strip(), match.group(3).lower()
        if len(digest) != _HASH_LENGTHS[algo]:
            raise _bad(source, f"manifest digest of {name[:80]!r} has the wrong length for {algo}")
        if name in entries:
            raise _bad(source, f"manifest lists {name[:80]!r} twice")
        entries[name] = (algo, digest)
    if not entries:
        raise _bad(source, "manifest lists no file")
    return entries


def manifest_text(digests: dict[str, str], algo: str = "SHA256") -> str:
    """A manifest as VirtualBox writes it (``SHA256 (file) = hex``), one line per file."""
    return "".join(f"{algo} ({name}) = {digest}\n" for name, digest in digests.items())
