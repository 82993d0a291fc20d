"""Reading and writing VMware's ``.vmx``/``.vmsd`` dictionary files, and the ``.vmx`` of a neutral spec.

The format is VMware's configuration dictionary: one ``key = "value"`` per line, ``#`` comments,
UTF-8 declared by ``.encoding``. Keys used here are the documented ones (VMware KB 1014782 "serial
port pipes", the Workstation "VMX file" settings, VMware's "Virtual Machine Configuration File
Reference"): ``memsize``, ``numvcpus``, ``firmware``, ``scsi0:0.fileName``, ``ide1:0.deviceType =
"cdrom-image"`` (the secondary IDE master, where Workstation puts a new VM's CD/DVD drive),
``ethernet0.connectionType = "nat"``, ``serialN.fileType = "file"|"pipe"``,
``serialN.pipe.endPoint = "server"``, ``sharedFolderN.*`` (HGFS) and ``checkpoint.vmState``.

VMware reads keys case-insensitively (files written by hand or by other tools often use lower case:
``checkpoint.vmstate``, ``scsi0:0.filename``), so parsed files are :class:`VmxDict`. A value escapes
a byte as ``|XX`` (two hex digits: ``|22`` a quote, ``|7C`` the bar, ``|0A`` a newline, ``|23``...),
over the UTF-8 bytes of the text.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hypervisors.errors import Unsupported
from hypervisors.spec import VMSpec

_LINE_RE = re.compile(r'^\s*([A-Za-z0-9_.:\-]+)\s*=\s*"(.*)"\s*$')

# Every key the backend writes; tests check generated files against this documented list.
DOCUMENTED_KEYS = re.compile(
    r"^(\.encoding|config\.version|virtualHW\.version|displayName|guestOS|memsize|numvcpus|firmware|"
    r"scsi0\.(present|virtualDev)|scsi0:\d+\.(present|fileName|deviceType)|"
    r"sata0\.present|sata0:\d+\.(present|fileName|deviceType|startConnected)|"
    r"ide[01]:[01]\.(present|fileName|deviceType|startConnected)|"
    r"ethernet0\.(present|connectionType|virtualDev|addressType|address)|"
    r"serial[01]\.(present|fileType|fileName|pipe\.endPoint|tryNoRxLoss|yieldOnMsrRead)|"
    r"sharedFolder\.maxNum|sharedFolder\d+\.(present|enabled|readAccess|writeAccess|hostPath|guestName|expiration)|"
    r"isolation\.tools\.hgfs\.disable|tools\.syncTime|checkpoint\.vmState|annotation|"
    r"vmlog\.disk\.[A-Za-z0-9_-]+)$"
)


# CD-ROMs go on IDE, secondary master first, as Workstation's new-VM wizard puts them: every guest
# kernel has an IDE (PIIX) driver, not all have AHCI.
IDE_CDROM_NODES = ("ide1:0", "ide1:1", "ide0:0", "ide0:1")


_ESCAPE_RE = re.compile(rb"\|([0-9A-Fa-f]{2})")


class VmxDict(dict[str, str]):
    """A ``.vmx``/``.vmsd`` dictionary whose keys compare case-insensitively, keeping the first spelling."""

    def __init__(self, items: dict[str, str] | None = None) -> None:
        super().__init__()
        self._spelling: dict[str, str] = {}
        for key, value in (items or {}).items():
            self[key] = value

    def _real(self, key: str) -> str:
        return self._spelling.get(key.lower(), key)

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(self._spelling.setdefault(key.lower(), key), value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(self._real(key))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(self._real(key))
        del self._spelling[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._spelling

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(self._real(key), default)

    def pop(self, key: str, *default: str | None) -> str | None:  # type: ignore[override]
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = super().pop(self._real(key))
        del self._spelling[key.lower()]
        return value

    def setdefault(self, key: str, default: str = "") -> str:  # type: ignore[override]
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, other: dict[str, str] | None = None, **more: str) -> None:  # type: ignore[override]
        for key, value in {**(other or {}), **more}.items():
            self[key] = value


def unescape(value: str) -> str:
    """Decode every ``|XX`` escape (hex of one byte of the UTF-8 text)."""
    if "|" not in value:
        return value
    raw = _ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def escape(value: str) -> str:
    """Escape what the format cannot hold as is: ``|``, ``"``, ``#`` and control characters."""
    out = []
    for char in value:
        if char in '|"#' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"|{ord(char):02X}")
        else:
            out.append(char)
    return "".join(out)


def parse(text: str) -> VmxDict:
    values = VmxDict()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _LINE_RE.match(line)
        if match:
            values[match.group(1)] = unescape(match.group(2))
    return values


def render(values: dict[str, str]) -> str:
    lines = [".encoding = \"UTF-8\""]
    for key, value in values.items():
        if key.lower() == ".encoding":
            continue
        lines.append(f'{key} = "{escape(value)}"')
    return "\n".join(lines) + "\n"


def read(path: Path) -> VmxDict:
    return parse(Path(path).read_text(encoding="utf-8")) if Path(path).exists() else VmxDict()


def write(path: Path, values: dict[str, str]) -> None:
    tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
    tmp.write_text(render(values), encoding="utf-8")
    os.replace(tmp, path)


DISK_LABEL_PREFIX = "vmlog.disk."


def disk_labels(values: dict[str, str]) -> dict[str, str]:
    """vmlog disk label -> the device node it names (``vmlog.disk.system = "scsi0:0"``)."""
    return {key[len(DISK_LABEL_PREFIX):]: node for key, node in values.items()
            if key.lower().startswith(DISK_LABEL_PREFIX)}


def spec_to_vmx(spec: VMSpec, disk_files: dict[str, str]) -> dict[str, str]:
    """The ``.vmx`` of ``spec``; ``disk_files`` maps each hard disk's label to its delta file name."""
    vmx: dict[str, str] = {
        "config.version": "8",
        "virtualHW.version": "16",
        "displayName": spec.name,
        "guestOS": "other5xlinux-64",
        "memsize": str(spec.memory_mib),
        "numvcpus": str(spec.cpus),
        "firmware": spec.firmware,
        "scsi0.present": "TRUE",
        "scsi0.virtualDev": "lsilogic",
        "tools.syncTime": "FALSE",
    }
    scsi_unit = 0
    ide_nodes = iter(IDE_CDROM_NODES)
    for disk in spec.disks:
        if disk.device == "cdrom":
            node = next(ide_nodes, None)
            if node is None:
                raise Unsupported(f"{spec.name} has more than {len(IDE_CDROM_NODES)} CD-ROMs", backend="vmware",
                                  fix="IDE has four units: merge the images into fewer ISO files")
            vmx.update({f"{node}.present": "TRUE", f"{node}.deviceType": "cdrom-image",
                        f"{node}.fileName": str(disk.path), f"{node}.startConnected": "TRUE"})
        else:
            node = f"scsi0:{scsi_unit}"
            scsi_unit += 1 if scsi_unit != 6 else 2  # unit 7 is the controller itself
            vmx.update({f"{node}.present": "TRUE", f"{node}.deviceType": "scsi-hardDisk",
                        f"{node}.fileName": disk_files[disk.label or str(disk.path)]})
            if disk.label:
                vmx[f"{DISK_LABEL_PREFIX}{disk.label}"] = node
    if spec.nics:
        nic = spec.nics[0]
        vmx.update({"ethernet0.present": "TRUE", "ethernet0.connectionType": "nat",
                    "ethernet0.virtualDev": "vmxnet3" if nic.model == "virtio" else "e1000"})
        if nic.mac:
            vmx.update({"ethernet0.addressType": "static", "ethernet0.address": nic.mac})
        else:
            vmx["ethernet0.addressType"] = "generated"
    if spec.serial_log is not None:
        vmx.update({"serial0.present": "TRUE", "serial0.fileType": "file", "serial0.fileName": str(spec.serial_log)})
    if spec.channel_socket is not None:
        if spec.serial_log is None:
            vmx["serial0.present"] = "FALSE"
        vmx.update({"serial1.present": "TRUE", "serial1.fileType": "pipe",
                    "serial1.fileName": str(spec.channel_socket), "serial1.pipe.endPoint": "server",
                    "serial1.tryNoRxLoss": "TRUE"})
    if spec.shared_folders:
        vmx["isolation.tools.hgfs.disable"] = "FALSE"
        vmx["sharedFolder.maxNum"] = str(len(spec.shared_folders))
        for index, folder in enumerate(spec.shared_folders):
            prefix = f"sharedFolder{index}"
            vmx.update({f"{prefix}.present": "TRUE", f"{prefix}.enabled": "TRUE", f"{prefix}.readAccess": "TRUE",
                        f"{prefix}.writeAccess": "FALSE" if folder.readonly else "TRUE",
                        f"{prefix}.hostPath": str(folder.host_path), f"{prefix}.guestName": folder.tag,
                        f"{prefix}.expiration": "never"})
    return vmx
