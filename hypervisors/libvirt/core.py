"""What every part of the libvirt backend stands on: the connection, its driver, lookups, error mapping.

The backend's operations live in one module per job (:mod:`lifecycle`, :mod:`memory`, :mod:`disks`,
:mod:`shares`), each a class over :class:`LibvirtCore`; :class:`~hypervisors.libvirt.backend.LibvirtHypervisor`
puts them together. Every public operation is wrapped by :func:`maps_libvirt_errors`, so no raw
``libvirtError`` reaches a caller, whichever libvirt call inside it failed.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from hypervisors.base import Capability, Hypervisor, SnapshotModel, VMState
from hypervisors.errors import BackendUnavailable, InvalidState
from hypervisors.guest import GuestAgent
from hypervisors.libvirt import accel as accel_mod
from hypervisors.libvirt import connection, domain_xml, states
from hypervisors.spec import VMSpec

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

QEMU_DRIVER = "QEMU"
# What any libvirt driver does (the test driver included): define, start, managed save, events.
DRIVER_CAPABILITIES = (
    Capability.MEMORY_SAVE
    | Capability.OVERLAY_CHAIN
    | Capability.ACPI_SHUTDOWN
    | Capability.STATE_EVENTS
)
# What needs QEMU behind libvirt: live disk snapshots, QEMU's memory images (restored under a new
# definition, renamed for another VM), virtiofs, QEMU's own NICs and serial sockets, the QEMU guest agent.
QEMU_CAPABILITIES = (
    Capability.LIVE_SNAPSHOT
    | Capability.MEMORY_IMAGE
    | Capability.SHARED_FOLDERS
    | Capability.SHARED_FOLDER_HOTPLUG
    | Capability.PORT_FORWARD
    | Capability.SERIAL_CHANNEL
    | Capability.GUEST_AGENT
)


def maps_libvirt_errors(what: str) -> Callable[[F], F]:
    """Turn a ``libvirtError`` escaping the method into vmlog's error, naming the VM of its first argument."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: LibvirtCore, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except self._libvirt.libvirtError as exc:
                target = args[0] if args else None
                name = target if isinstance(target, str) else getattr(target, "name", None)
                raise connection.map_error(exc, what, name if isinstance(name, str) else None) from exc

        wrapper.maps_libvirt_errors = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class LibvirtCore(Hypervisor):
    """One libvirt connection; VMs are libvirt domains whose VMSpec lives in their metadata."""

    name: ClassVar[str] = "kvm"
    snapshot_model: ClassVar[SnapshotModel] = SnapshotModel.OVERLAY_CHAIN
    native_disk_format: ClassVar[str] = "qcow2"

    def __init__(self, uri: str | None = None, accel: str | None = None) -> None:
        self._libvirt = connection.import_libvirt()
        self.uri = uri or connection.default_uri()
        self.remote = connection.is_remote(self.uri)
        self.requested_accel = _requested(accel)
        self._conn: Any = connection.open_connection(self._libvirt, self.uri)
        self._decision: accel_mod.AccelDecision | None = None
        self._driver: str | None = None

    # -- connection facts -------------------------------------------------------------------
    @property
    def driver(self) -> str:
        """The libvirt driver behind the URI as libvirt names it (``QEMU``, ``TEST``, ...)."""
        if self._driver is None:
            self._driver = str(self._call("ask the driver of", None, self._conn.getType))
        return self._driver

    @property
    def runs_qemu(self) -> bool:
        return self.driver.upper() == QEMU_DRIVER

    @property
    def capabilities(self) -> Capability:
        caps = DRIVER_CAPABILITIES | (QEMU_CAPABILITIES if self.runs_qemu else Capability.NONE)
        return caps | (Capability.REMOTE if self.remote else Capability.NONE)

    @property
    def accelerator(self) -> accel_mod.AccelDecision:
        """KVM or TCG for the guests of this connection (decided once, see :mod:`accel`)."""
        if self._decision is None:
            if not self.runs_qemu:
                self._decision = accel_mod.decide_other_driver(self.driver, self._driver_domain_type())
            elif self.remote:
                self._decision = accel_mod.decide_remote(self.requested_accel, self._remote_offers_kvm())
            else:
                self._decision = accel_mod.decide_local(self.requested_accel, self._emulator())
        return self._decision

    def _driver_domain_type(self) -> str:
        """The first ``<domain type=...>`` the driver offers for hvm guests (``test`` on the test driver)."""
        try:
            caps = ET.fromstring(self._conn.getCapabilities())
        except (self._libvirt.libvirtError, ET.ParseError):
            return self.driver.lower()
        for guest in caps.findall("guest"):
            domain = guest.find("arch/domain")
            if guest.findtext("os_type") == "hvm" and domain is not None and domain.get("type"):
                return domain.get("type", "")
        return self.driver.lower()

    def _domain_capabilities(self, virttype: str, machine: str | None = None) -> ET.Element | None:
        """QEMU's domain capabilities, or None where the driver or the accelerator has none."""
        try:
            return ET.fromstring(self._conn.getDomainCapabilities(None, "x86_64", machine, virttype, 0))
        except (self._libvirt.libvirtError, ET.ParseError):
            return None

    def _emulator(self) -> str | None:
        caps = self._domain_capabilities("qemu")
        path = caps.findtext("path") if caps is not None else None
        return path or accel_mod.find_emulator()

    def _remote_offers_kvm(self) -> bool:
        return self._domain_capabilities("kvm") is not None

    def _dac_label(self) -> str | None:
        # On the local system daemon QEMU would run as libvirt-qemu and could not open the user's
        # files (home directories, 0700 temp dirs); run it as the calling user instead.
        if connection.is_local_system(self.uri):
            return f"+{os.getuid()}:+{os.getgid()}"
        return None

    def _options(self, uuid: str | None = None) -> domain_xml.DomainOptions:
        return domain_xml.DomainOptions(
            domain_type=self.accelerator.domain_type, dac_label=self._dac_label(), uuid=uuid
        )

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, what: str, name: str | None, func: Callable[..., T], *args: Any) -> T:
        try:
            return func(*args)
        except self._libvirt.libvirtError as exc:
            raise connection.map_error(exc, what, name) from exc

    def _domain(self, name: str) -> Any:
        return self._call("find the VM", name, self._conn.lookupByName, name)

    def _is_active(self, dom: Any, name: str) -> bool:
        return bool(self._call("read the state of", name, dom.isActive))

    def _stored_spec(self, dom: Any, name: str) -> VMSpec:
        xml = self._call("read the definition of", name, dom.XMLDesc, self._libvirt.VIR_DOMAIN_XML_INACTIVE)
        spec = domain_xml.read_spec(xml)
        if spec is None:
            raise InvalidState(
                f"VM {name!r} was not defined by vmlog (no vmlog metadata in its libvirt definition)",
                fix="manage it with virsh, or import it into vmlog",
                backend=self.name,
            )
        return spec

    def _state_of(self, dom: Any, name: str) -> VMState:
        state, reason = self._call("read the state of", name, dom.state)
        saved = bool(self._call("read the state of", name, dom.hasManagedSaveImage, 0))
        return states.map_state(state, reason, saved)

    @contextmanager
    def _defining(self, name: str) -> Iterator[None]:
        try:
            yield
        except self._libvirt.libvirtError as exc:
            raise connection.map_error(exc, "define", name) from exc

    def _define_xml(self, name: str, xml: str) -> None:
        with self._defining(name):
            self._conn.defineXML(xml)

    # -- discovery -------------------------------------------------------------------------
    @maps_libvirt_errors("list the VMs")
    def list_vms(self) -> list[str]:
        domains = self._call("list the VMs", None, self._conn.listAllDomains, 0)
        return sorted(dom.name() for dom in domains)

    @maps_libvirt_errors("find the VM")
    def exists(self, name: str) -> bool:
        try:
            self._conn.lookupByName(name)
        except self._libvirt.libvirtError as exc:
            if connection.error_code(exc) == connection.ERR_NO_DOMAIN:
                return False
            raise connection.map_error(exc, "find the VM", name) from exc
        return True

    @maps_libvirt_errors("read the definition of")
    def spec(self, name: str) -> VMSpec:
        """The VMSpec the VM was (re)defined from, with disk paths as of its last swap."""
        return self._stored_spec(self._domain(name), name)

    @maps_libvirt_errors("reach the guest agent of")
    def guest_agent(self, vm_name: str) -> GuestAgent:
        """qemu-ga in the domain, over its ``org.qemu.guest_agent.0`` channel (see :mod:`guest_agent`).

        On a driver without agent support (the test driver) the channel still freezes and thaws
        through libvirt's own calls, and the agent commands raise ``Unsupported``.
        """
        from hypervisors.libvirt.guest_agent import QemuGuestAgent

        return QemuGuestAgent(self._libvirt, self._domain(vm_name), vm_name)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except self._libvirt.libvirtError:
                pass
            self._conn = None


def _requested(value: str | None) -> str:
    try:
        return accel_mod.requested_accelerator(value)
    except ValueError as exc:
        fix = "set VMLOG_ACCEL (or accel=) to auto, kvm or tcg"
        raise BackendUnavailable(str(exc), fix=fix, backend="kvm") from exc


def version_text(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"
