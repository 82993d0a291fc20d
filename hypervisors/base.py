"""The contract every hypervisor backend fulfils: shared state enum, capabilities, operations.

Two snapshot models live side by side:

* ``SnapshotModel.OVERLAY_CHAIN`` (libvirt): vmlog owns the qcow2 chain; the backend only swaps a
  disk onto a new overlay that vmlog created (live or stopped) and redefines disks on restore.
* ``SnapshotModel.NATIVE_TREE`` (VirtualBox, VMware): the hypervisor owns differencing disks;
  vmlog mirrors its tree through ``snapshot_*``.

Operations a backend cannot do raise :class:`~hypervisors.errors.Unsupported` and the matching
:class:`Capability` flag is absent, so callers can ask before they try.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from hypervisors.errors import Unsupported
from hypervisors.guest import GuestAgent
from hypervisors.spec import DiskSpec, SharedFolder, VMSpec


class VMState(enum.Enum):
    """The one state vocabulary; each backend maps its native states onto it."""

    RUNNING = "running"
    PAUSED = "paused"  # CPU stopped, memory still held by the hypervisor process
    SAVED = "saved"  # memory state written to disk; start/resume continues where it was
    STOPPED = "stopped"  # powered off, nothing in memory
    CRASHED = "crashed"
    TRANSITIONING = "transitioning"  # booting, saving, shutting down
    UNKNOWN = "unknown"


class SnapshotModel(enum.Enum):
    OVERLAY_CHAIN = "overlay-chain"
    NATIVE_TREE = "native-tree"


class Capability(enum.Flag):
    NONE = 0
    LIVE_SNAPSHOT = enum.auto()  # freeze a disk layer while the guest runs
    MEMORY_SAVE = enum.auto()  # suspend to disk and resume (switching projects)
    MEMORY_IMAGE = enum.auto()  # write the memory state to a file vmlog keeps with a state
    OVERLAY_CHAIN = enum.auto()
    NATIVE_SNAPSHOT_TREE = enum.auto()
    SHARED_FOLDERS = enum.auto()
    PORT_FORWARD = enum.auto()
    SERIAL_CHANNEL = enum.auto()  # a host Unix socket wired to a guest serial port
    ACPI_SHUTDOWN = enum.auto()
    REMOTE = enum.auto()  # the VMs may run on another machine
    STATE_EVENTS = enum.auto()  # pushes VM state changes (``watch_states``) instead of being polled
    SHARED_FOLDER_HOTPLUG = enum.auto()  # add or remove a shared folder of a running VM
    SNAPSHOT_DISKS = enum.auto()  # hand over the disks a native snapshot froze, without restoring it
    DISPLAY = enum.auto()  # the running VM's screen is reachable through a VNC or SPICE server (``display_endpoint``)
    GUEST_AGENT = enum.auto()  # talks to the platform's standard agent in the guest (``guest_agent``)


StateCallback = Callable[[str, VMState], None]
"""Called with a VM's name and its new state; runs on a thread of the backend's, not the caller's."""


@dataclass
class Probe:
    """What a backend found when asked whether it can work here."""

    backend: str
    available: bool
    summary: str
    fix: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "available": self.available,
            "summary": self.summary,
            "fix": self.fix,
            "details": dict(self.details),
            "warnings": list(self.warnings),
        }



@dataclass
class HostCheck:
    """One thing vmlog needs of the host behind a connection (``vml doctor --uri``), with the fix when it fails."""

    name: str
    ok: bool
    summary: str
    fix: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

@dataclass(frozen=True)
class SnapshotDisk:
    """One disk as a native snapshot froze it, in a form qemu-img can read.

    ``flattened=False``: ``path`` is the hypervisor's own frozen delta, left in place, whose backing
    chain qemu-img follows (VMware's delta VMDK); it must be read, never written. ``flattened=True``:
    ``path`` is a full standalone copy the backend made in the caller's work directory (VirtualBox
    flattening a differencing VDI, which qemu-img cannot follow); the caller deletes it.
    """

    path: Path
    format: str
    flattened: bool


@dataclass(frozen=True)
class NativeSnapshot:
    """One node of a backend-owned snapshot tree."""

    id: str
    name: str
    parent_id: str | None
    has_memory: bool = False


class Hypervisor(ABC):
    """One backend connection. Methods take VM names; a VM is defined from a :class:`VMSpec`."""

    name: ClassVar[str]
    snapshot_model: ClassVar[SnapshotModel]
    native_disk_format: ClassVar[str] = "qcow2"

    @property
    @abstractmethod
    def capabilities(self) -> Capability:
        """What this connection can do (may depend on the host, e.g. a remote URI)."""

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def require(self, capability: Capability, what: str) -> None:
        if capability not in self.capabilities:
            raise Unsupported(f"{self.name} cannot {what}", backend=self.name)

    # -- discovery ---------------------------------------------------------------------------
    @abstractmethod
    def probe(self) -> Probe:
        """Check that the backend works here; never raises, never hangs."""

    @abstractmethod
    def list_vms(self) -> list[str]:
        """Names of the VMs defined in this backend (all of them, not only vmlog's)."""

    def exists(self, name: str) -> bool:
        return name in self.list_vms()

    # -- lifecycle ---------------------------------------------------------------------------
    @abstractmethod
    def define(self, spec: VMSpec) -> None:
        """Create the VM from ``spec``; ``VMExists`` if the name is taken."""

    @abstractmethod
    def redefine(self, spec: VMSpec) -> None:
        """Replace the definition of a stopped VM (disks, memory, ...); keeps its saved state out."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Power off if needed and remove the VM and whatever the backend keeps for it.

        Disk files vmlog created stay where they are: vmlog owns them.
        """

    @abstractmethod
    def state(self, name: str) -> VMState: ...

    @abstractmethod
    def start(self, name: str) -> None:
        """Boot the VM, or continue from its saved memory state if it has one."""

    @abstractmethod
    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        """ACPI power button, then wait until the guest is off (``OperationTimeout`` if not)."""

    @abstractmethod
    def poweroff(self, name: str) -> None:
        """Pull the plug. Idempotent on a stopped VM."""

    def suspend(self, name: str) -> None:
        """Write the running VM's memory to disk and stop it (state becomes ``SAVED``)."""
        raise Unsupported(f"{self.name} cannot save a VM's memory state", backend=self.name)

    def resume(self, name: str) -> None:
        """Continue a ``SAVED`` or ``PAUSED`` VM exactly where it was."""
        raise Unsupported(f"{self.name} cannot resume a saved VM", backend=self.name)

    def discard_saved_state(self, name: str) -> None:
        """Forget the saved memory state; the next start cold-boots."""
        raise Unsupported(f"{self.name} has no saved memory state to discard", backend=self.name)

    def save_memory_image(self, name: str, path: Path) -> None:
        """Save the running VM's memory to ``path`` (vmlog keeps it with a state); the VM stops."""
        raise Unsupported(f"{self.name} cannot write a memory image", backend=self.name)

    def restore_memory_image(self, spec: VMSpec, path: Path) -> None:
        """Start the VM defined by ``spec`` from a memory image written by ``save_memory_image``."""
        raise Unsupported(f"{self.name} cannot restore a memory image", backend=self.name)

    def memory_image_stack(self, path: Path) -> dict[str, str | int]:
        """What a memory image needs to resume: hypervisor, its version, machine type, memory, CPUs.

        A memory image only resumes on the same stack; a bundle records this so that an importer
        can compare it with :meth:`memory_stack` before trusting the image.
        """
        raise Unsupported(f"{self.name} cannot describe a memory image", backend=self.name)

    def memory_stack(self, spec: VMSpec) -> dict[str, str | int]:
        """The :meth:`memory_image_stack` a VM defined by ``spec`` has on this host."""
        raise Unsupported(f"{self.name} cannot describe its memory images", backend=self.name)

    def console_command(self, name: str) -> list[str]:
        """The command line that attaches the user's terminal to the VM's serial console."""
        raise Unsupported(
            f"{self.name} has no interactive serial console",
            fix="read the console log instead: `vml console` without --attach",
            backend=self.name,
        )

    # -- state events --------------------------------------------------------------------------
    def watch_states(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(vm_name, state)`` whenever a VM of this backend changes state.

        Covers every VM of the backend, including changes made by other programs (``virsh``, a
        second vmlog, a guest powering itself off). The callback runs on a thread the backend owns:
        it must be quick and must not assume it is on the caller's thread. Returns the function that
        unsubscribes; once it has returned, the callback is not called again. Backends that cannot
        push changes raise ``Unsupported`` and do not declare ``Capability.STATE_EVENTS``: poll
        :meth:`state` instead.
        """
        raise Unsupported(
            f"{self.name} does not report VM state changes",
            fix="poll the VM states instead",
            backend=self.name,
        )

    # -- overlay-chain model (vmlog owns the disk chain) -------------------------------------
    def swap_disk(self, name: str, label: str, new_top: Path) -> None:
        """Make the disk labelled ``label`` write into ``new_top`` from now on.

        ``new_top`` is an existing qcow2 overlay whose backing file is the disk's current top.
        Works on a running VM (the old top freezes atomically) and on a stopped one.
        """
        raise Unsupported(f"{self.name} does not let vmlog manage overlay chains", backend=self.name)

    def disk_tops(self, name: str) -> dict[str, Path]:
        """The file each labelled disk currently writes into."""
        raise Unsupported(f"{self.name} does not report disk tops", backend=self.name)

    # -- native-tree model (the hypervisor owns differencing disks) --------------------------
    def snapshot_create(self, name: str, snapshot_name: str, *, with_memory: bool = False) -> str:
        """Take a native snapshot; return its immutable native id."""
        raise Unsupported(f"{self.name} has no native snapshot tree", backend=self.name)

    def snapshot_restore(self, name: str, snapshot_id: str) -> None:
        raise Unsupported(f"{self.name} has no native snapshot tree", backend=self.name)

    def snapshot_delete(self, name: str, snapshot_id: str) -> None:
        raise Unsupported(f"{self.name} has no native snapshot tree", backend=self.name)

    def snapshot_list(self, name: str) -> list[NativeSnapshot]:
        raise Unsupported(f"{self.name} has no native snapshot tree", backend=self.name)

    def snapshot_disks(self, vm_name: str, snapshot_id: str, work_dir: Path) -> dict[str, SnapshotDisk]:
        """Disk label -> the disk native snapshot ``snapshot_id`` froze, without restoring anything.

        Exporting a state must not disturb the VM (it may run, or sit on another snapshot), so the
        backend hands over the frozen disk itself, or a flattened copy in ``work_dir`` where
        qemu-img cannot read the hypervisor's own chain (see :class:`SnapshotDisk`).
        """
        raise Unsupported(f"{self.name} cannot hand over the disks of a native snapshot", backend=self.name)

    # -- shared folders of a running VM --------------------------------------------------------
    def attach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        """Show ``folder`` to the running VM now, for as long as it runs (the definition is unchanged).

        A share that should survive a reboot belongs in the VM's spec (``redefine``); this only
        spares the user a reboot. ``OperationFailed`` carries the hypervisor's reason when it
        refuses (for example a virtiofs share on a VM not booted with shared memory).
        """
        raise Unsupported(
            f"{self.name} cannot add a shared folder to a running VM",
            fix="share it at the next boot: shut the VM down and start it again",
            backend=self.name,
        )

    def detach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        """Remove the share tagged ``folder.tag`` from the running VM (the definition is unchanged)."""
        raise Unsupported(
            f"{self.name} cannot remove a shared folder from a running VM",
            fix="it goes away when the VM stops",
            backend=self.name,
        )

    # -- disks across backends ---------------------------------------------------------------
    def export_disk(self, name: str, label: str, dest: Path, fmt: str = "qcow2") -> Path:
        """Flatten the disk's whole chain into one standalone image at ``dest``."""
        from hypervisors import qemu_img

        top = self.disk_tops(name)[label]
        qemu_img.convert(top, dest, src_format=self.native_disk_format, dest_format=fmt)
        return dest

    def import_disk(self, src: Path, src_format: str, dest: Path) -> DiskSpec:
        """Convert a portable image into this backend's native disk format at ``dest``."""
        from hypervisors import qemu_img

        qemu_img.convert(src, dest, src_format=src_format, dest_format=self.native_disk_format)
        return DiskSpec(path=dest, format=self.native_disk_format)  # type: ignore[arg-type]

    # -- the VM's screen -------------------------------------------------------------------------
    def display_endpoint(self, vm_name: str) -> DisplayEndpoint:
        """Where a viewer reaches the running VM's screen (keyboard and mouse go the same way).

        ``VMNotFound`` for an unknown VM; ``Unsupported`` where the backend shows no screen, or while
        the VM is not running (the server exists only with the VM's process).
        """
        raise Unsupported(f"{self.name} shows no screen of its VMs to viewers", backend=self.name)

    # -- many disks at one instant, many VMs in one listing ------------------------------------
    def swap_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        """``swap_disk`` for several disks at once; a backend that can freezes them all at the same instant."""
        for label, new_top in new_tops.items():
            self.swap_disk(name, label, new_top)

    def vm_states(self, names: list[str]) -> dict[str, VMState | None]:
        """The state of each VM of ``names`` (None: not defined); backends with a listing call use one."""
        return {name: (self.state(name) if self.exists(name) else None) for name in names}

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release the connection (idempotent)."""

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the guest's standard agent ------------------------------------------------------------
    def guest_agent(self, vm_name: str) -> GuestAgent:
        """The channel to the platform's standard agent in the running VM (see :mod:`hypervisors.guest`).

        Making it does not wait for the guest: ``ping`` says whether an agent answers. Backends
        without one raise ``Unsupported`` and do not declare ``Capability.GUEST_AGENT``.
        """
        raise Unsupported(
            f"{self.name} has no channel to a guest agent",
            fix="reach the guest over SSH (`vml ssh`)",
            backend=self.name,
        )

    # -- every display server of the VM ----------------------------------------------------------
    def display_endpoints(self, vm_name: str) -> list[DisplayEndpoint]:
        """Every server showing the running VM's screen (VNC first, then SPICE where the backend runs one);
        the first is :meth:`display_endpoint`'s."""
        return [self.display_endpoint(vm_name)]

    # -- the host behind the connection ----------------------------------------------------------
    def check_host(self, storage_owner: str) -> list[HostCheck]:
        """What vmlog needs of this connection's host, each failing check with its fix (``vml doctor --uri``).

        ``storage_owner`` names the vmlog home whose storage on the host is looked at. Backends with
        remote hosts say more; the default is the backend's own probe.
        """
        probe = self.probe()
        return [HostCheck(self.name, probe.available, probe.summary, fix=probe.fix, details=dict(probe.details),
                          warnings=list(probe.warnings))]

    # -- shorter chains under a running VM ----------------------------------------------------
    def repoint_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        """Move each labelled disk onto ``new_top``, a file whose chain shows what the disk's top shows now.

        The guest sees the same bytes; the hypervisor reads a shorter chain. Backends that cannot
        do it while the VM runs raise ``Unsupported`` (then a running VM's chain only grows).
        """
        raise Unsupported(f"{self.name} cannot move a running VM's disks onto other files", backend=self.name)

    # -- storage on a remote host ---------------------------------------------------------------
    def host_storage(self, storage_owner: str) -> HostStorage:
        """vmlog's storage for the home ``storage_owner`` on this connection's host (made on first use).

        A backend whose VMs run on another machine keeps their disks there, reached only through it;
        the others keep them in vmlog's own directories and raise ``Unsupported``.
        """
        raise Unsupported(f"{self.name} keeps no storage of vmlog's on a host", backend=self.name)


@dataclass(frozen=True)
class DisplayEndpoint:
    """A running VM's display server: VNC or SPICE on a TCP address or a Unix socket of this host."""

    protocol: str  # "vnc" or "spice"
    host: str | None = None
    port: int | None = None
    socket: Path | None = None  # set instead of host and port when the server listens on a Unix socket

    @property
    def uri(self) -> str:
        """The address as ``remote-viewer`` takes it: ``vnc://127.0.0.1:5900`` or ``vnc+unix:///path``."""
        if self.socket is not None:
            return f"{self.protocol}+unix://{self.socket}"
        return f"{self.protocol}://{self.host}:{self.port}"


class HostStorage(Protocol):
    """Volumes of vmlog's on a hypervisor's host, by name; paths are the host's and are never opened here."""

    host: str  # the address the host was reached through (a libvirt URI)

    def volume_path(self, name: str) -> str: ...

    def volume_names(self) -> list[str]: ...

    def exists(self, name: str) -> bool: ...

    def backing_path(self, name: str) -> str | None: ...

    def allocation(self, name: str) -> int: ...

    def create_overlay(self, name: str, backing: str, *, cluster_size: int | None = None) -> object: ...

    def create_blank(self, name: str, capacity: int, *, cluster_size: int | None = None) -> object: ...

    def upload(self, source: Path, name: str, *, sparse: bool = True, verify: bool = False) -> object: ...

    def ensure_copy(self, source: Path, name: str, sha256: str) -> object: ...

    def download(self, name: str, target: Path, *, sparse: bool = True) -> object: ...

    def read_range(self, name: str, offset: int, length: int) -> bytes: ...

    def delete(self, name: str) -> None: ...

    def capacity(self, name: str) -> int: ...

    def resize(self, name: str, capacity: int) -> None: ...
