"""The hypervisor-neutral description of a virtual machine.

A :class:`VMSpec` is what vmlog stores with every state and puts in bundles, so it must be
plain data (JSON round trip) and mean the same on every backend.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

DiskFormat = Literal["qcow2", "raw", "vmdk", "vdi"]
DISK_FORMATS: tuple[str, ...] = ("qcow2", "raw", "vmdk", "vdi")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def check_vm_name(name: str) -> str:
    """Return ``name`` if every backend can use it as a VM name, else raise ``ValueError``."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"invalid VM name {name!r}: use 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class DiskSpec:
    """One disk or optical drive attached to the VM.

    ``path`` is the top of the disk's chain (an overlay for vmlog-managed chains).
    """

    path: Path
    format: DiskFormat = "qcow2"
    device: Literal["disk", "cdrom"] = "disk"
    readonly: bool = False
    label: str = ""  # what the disk is for: "system", "scratch", "seed", ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.format not in DISK_FORMATS:
            raise ValueError(f"unknown disk format {self.format!r}; expected one of {', '.join(DISK_FORMATS)}")
        if self.device == "cdrom" and self.format != "raw":
            raise ValueError("a cdrom image must be given as format 'raw' (an ISO file)")


@dataclass(frozen=True)
class PortForward:
    """A host port forwarded to a guest port through the VM's user-mode (NAT) network."""

    host_port: int
    guest_port: int
    protocol: Literal["tcp", "udp"] = "tcp"
    host_address: str = "127.0.0.1"


@dataclass(frozen=True)
class NicSpec:
    """A NAT network card with optional port forwards (the only network kind every backend has)."""

    model: str = "virtio"
    mac: str | None = None
    forwards: tuple[PortForward, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "forwards", tuple(f if isinstance(f, PortForward) else PortForward(**f) for f in self.forwards)
        )


@dataclass(frozen=True)
class SharedFolder:
    """A host directory shown to the guest under ``tag`` (virtiofs, VirtualBox or HGFS shared folder)."""

    tag: str
    host_path: Path
    readonly: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "host_path", Path(self.host_path))


@dataclass(frozen=True)
class VMSpec:
    """Everything a backend needs to define a VM, and nothing backend-specific.

    ``serial_log`` receives the first serial port's output (the guest console).
    ``channel_socket`` is a Unix socket on the host connected to the guest's second serial port;
    vmlog talks to its appliances' guest agent through it.
    """

    name: str
    cpus: int = 1
    memory_mib: int = 512
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = (NicSpec(),)
    shared_folders: tuple[SharedFolder, ...] = ()
    serial_log: Path | None = None
    channel_socket: Path | None = None
    firmware: Literal["bios", "efi"] = "bios"
    extra: dict[str, Any] = field(default_factory=dict)  # backend hints, ignored by the others

    def __post_init__(self) -> None:
        check_vm_name(self.name)
        if self.cpus < 1:
            raise ValueError("a VM needs at least one CPU")
        if self.memory_mib < 32:
            raise ValueError("a VM needs at least 32 MiB of memory")
        object.__setattr__(self, "disks", tuple(d if isinstance(d, DiskSpec) else DiskSpec(**d) for d in self.disks))
        object.__setattr__(self, "nics", tuple(n if isinstance(n, NicSpec) else NicSpec(**n) for n in self.nics))
        object.__setattr__(
            self,
            "shared_folders",
            tuple(s if isinstance(s, SharedFolder) else SharedFolder(**s) for s in self.shared_folders),
        )
        for attr in ("serial_log", "channel_socket"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, Path(value))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; paths become strings."""

        def convert(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [convert(v) for v in value]
            return value

        return convert(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VMSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown VM spec fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def replace(self, **changes: Any) -> VMSpec:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data.update(changes)
        return VMSpec(**data)

    def disk(self, label: str) -> DiskSpec:
        """The disk with this label (``KeyError`` if none)."""
        for disk in self.disks:
            if disk.label == label:
                return disk
        raise KeyError(label)
