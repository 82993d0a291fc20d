"""``LibvirtHypervisor``: the KVM/QEMU backend on libvirt-python, overlay-chain snapshot model."""

from __future__ import annotations

import os
import shutil
import time
import uuid as uuid_mod
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from hypervisors.base import Capability, Hypervisor, Probe, SnapshotModel, StateCallback, VMState
from hypervisors.errors import (
    BackendUnavailable,
    InvalidState,
    OperationFailed,
    OperationTimeout,
    Unsupported,
    VMExists,
    VMNotFound,
)
from hypervisors.libvirt import accel as accel_mod
from hypervisors.libvirt import connection, domain_xml, events, save_image, states
from hypervisors.spec import VMSpec

T = TypeVar("T")

BASE_CAPABILITIES = (
    Capability.LIVE_SNAPSHOT
    | Capability.MEMORY_SAVE
    | Capability.MEMORY_IMAGE
    | Capability.OVERLAY_CHAIN
    | Capability.SHARED_FOLDERS
    | Capability.PORT_FORWARD
    | Capability.SERIAL_CHANNEL
    | Capability.ACPI_SHUTDOWN
    | Capability.STATE_EVENTS
)
SHUTDOWN_POLL_SECONDS = 0.2
POWER_BUTTON_REPEAT_SECONDS = 5.0  # a guest still booting may miss the first press


class LibvirtHypervisor(Hypervisor):
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

    # -- connection facts -------------------------------------------------------------------
    @property
    def capabilities(self) -> Capability:
        return BASE_CAPABILITIES | (Capability.REMOTE if self.remote else Capability.NONE)

    @property
    def accelerator(self) -> accel_mod.AccelDecision:
        """KVM or TCG for the guests of this connection (decided once, see :mod:`accel`)."""
        if self._decision is None:
            if self.remote:
                self._decision = accel_mod.decide_remote(self.requested_accel, self._remote_offers_kvm())
            else:
                self._decision = accel_mod.decide_local(self.requested_accel, self._emulator())
        return self._decision

    def _domain_capabilities(self, virttype: str) -> ET.Element | None:
        try:
            return ET.fromstring(self._conn.getDomainCapabilities(None, "x86_64", None, virttype, 0))
        except self._libvirt.libvirtError:
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

    # -- discovery -------------------------------------------------------------------------
    def probe(self) -> Probe:
        lv = self._libvirt
        details: dict[str, str] = {"uri": self.uri}
        warnings: list[str] = []
        try:
            details["libvirt"] = _version_text(self._conn.getLibVersion())
            details["hypervisor"] = f"{self._conn.getType()} {_version_text(self._conn.getVersion())}"
            details["host"] = self._conn.getHostname()
        except lv.libvirtError as exc:
            return Probe(self.name, False, f"libvirt at {self.uri} does not answer: {exc}",
                         fix=connection.START_DAEMON_HINT, details=details)
        try:
            decision = self.accelerator
        except ValueError as exc:
            return Probe(self.name, False, str(exc), fix="set VMLOG_ACCEL to auto, kvm or tcg", details=details)
        details["accelerator"] = decision.accelerator
        details["accelerator reason"] = decision.reason
        if decision.warning:
            warnings.append(decision.warning)
        if not self.remote:
            qemu_img = shutil.which("qemu-img")
            details["qemu-img"] = qemu_img or "missing"
            if qemu_img is None:
                return Probe(self.name, False, "qemu-img is not installed", fix="apt-get install qemu-utils",
                             details=details, warnings=warnings)
        summary = f"libvirt {details['libvirt']} at {self.uri}, {details['hypervisor']}, {decision.accelerator}"
        return Probe(self.name, True, summary, details=details, warnings=warnings)

    def list_vms(self) -> list[str]:
        domains = self._call("list the VMs", None, self._conn.listAllDomains, 0)
        return sorted(dom.name() for dom in domains)

    def exists(self, name: str) -> bool:
        try:
            self._conn.lookupByName(name)
        except self._libvirt.libvirtError as exc:
            if exc.get_error_code() == connection.ERR_NO_DOMAIN:
                return False
            raise connection.map_error(exc, "find the VM", name) from exc
        return True

    def spec(self, name: str) -> VMSpec:
        """The VMSpec the VM was (re)defined from, with disk paths as of its last swap."""
        return self._stored_spec(self._domain(name), name)

    # -- lifecycle ---------------------------------------------------------------------------
    def define(self, spec: VMSpec) -> None:
        if self.exists(spec.name):
            raise VMExists(f"a VM named {spec.name!r} already exists in libvirt ({self.uri})",
                           fix="choose another name, or delete the old VM", backend=self.name)
        xml = domain_xml.build_domain_xml(spec, self._options())
        with self._defining(spec.name):
            self._conn.defineXML(xml)

    def redefine(self, spec: VMSpec) -> None:
        dom = self._domain(spec.name)
        current = self._state_of(dom, spec.name)
        if current not in (VMState.STOPPED, VMState.SAVED, VMState.CRASHED):
            raise InvalidState(f"cannot redefine VM {spec.name!r} while it is {current.value}",
                               fix="shut it down or suspend it first", backend=self.name)
        if current is VMState.SAVED:
            old = domain_xml.read_spec(dom.XMLDesc(self._libvirt.VIR_DOMAIN_XML_INACTIVE))
            # The managed save image carries the old devices; it cannot continue on other hardware.
            if old is None or domain_xml.hardware_differs(old, spec):
                self._call("discard the saved state of", spec.name, dom.managedSaveRemove, 0)
        xml = domain_xml.build_domain_xml(spec, self._options(uuid=dom.UUIDString()))
        with self._defining(spec.name):
            self._conn.defineXML(xml)

    def delete(self, name: str) -> None:
        lv = self._libvirt
        dom = self._domain(name)
        if dom.isActive():
            self._destroy(dom, name)
        flags = (
            lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | lv.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
            | lv.VIR_DOMAIN_UNDEFINE_NVRAM
        )
        self._call("delete", name, dom.undefineFlags, flags)

    def state(self, name: str) -> VMState:
        return self._state_of(self._domain(name), name)

    def start(self, name: str) -> None:
        dom = self._domain(name)
        if dom.isActive():
            raise InvalidState(f"VM {name!r} is already running", backend=self.name)
        self._call("start", name, dom.createWithFlags, 0)  # continues from a managed save if there is one

    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        dom = self._domain(name)
        if not dom.isActive():
            raise InvalidState(f"VM {name!r} is not running", fix="nothing to shut down", backend=self.name)
        deadline = time.monotonic() + timeout
        next_press = 0.0
        while True:
            now = time.monotonic()
            if not dom.isActive():
                return
            if now >= deadline:
                raise OperationTimeout(
                    f"VM {name!r} did not power off within {timeout:g} s after the ACPI power button",
                    fix="the guest ignores ACPI; power it off instead (data not yet written may be lost)",
                    backend=self.name,
                )
            if now >= next_press:
                try:
                    dom.shutdownFlags(self._libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
                except self._libvirt.libvirtError as exc:
                    if dom.isActive():
                        raise connection.map_error(exc, "shut down", name) from exc
                    return
                next_press = now + POWER_BUTTON_REPEAT_SECONDS
            time.sleep(SHUTDOWN_POLL_SECONDS)

    def poweroff(self, name: str) -> None:
        dom = self._domain(name)
        if dom.isActive():
            self._destroy(dom, name)

    def _destroy(self, dom: Any, name: str) -> None:
        try:
            dom.destroy()
        except self._libvirt.libvirtError as exc:
            if dom.isActive():  # it may have stopped on its own meanwhile
                raise connection.map_error(exc, "power off", name) from exc

    def suspend(self, name: str) -> None:
        dom = self._domain(name)
        if not dom.isActive():
            raise InvalidState(f"VM {name!r} is not running", fix="start it first", backend=self.name)
        try:
            dom.managedSave(0)
        except self._libvirt.libvirtError as exc:
            raise self._save_error(exc, "suspend", name) from exc

    def _save_error(self, exc: Exception, what: str, name: str) -> Exception:
        error = connection.map_error(exc, what, name)
        if "non-migratable" in str(exc) and "vhost-user-fs" in str(exc):
            error.message = (f"cannot {what} VM {name!r}: QEMU cannot save the memory of a VM with"
                             " virtiofs shared folders")
            error.fix = "shut the VM down instead, or define it without shared folders"
        return error

    def resume(self, name: str) -> None:
        dom = self._domain(name)
        current = self._state_of(dom, name)
        if current is VMState.SAVED:
            self._call("resume", name, dom.createWithFlags, 0)
        elif current is VMState.PAUSED:
            self._call("resume", name, dom.resume)
        else:
            raise InvalidState(f"cannot resume VM {name!r}: it is {current.value}, not saved or paused",
                               fix="start it instead" if current is VMState.STOPPED else None,
                               backend=self.name)

    def discard_saved_state(self, name: str) -> None:
        dom = self._domain(name)
        if self._call("read the state of", name, dom.hasManagedSaveImage, 0):
            self._call("discard the saved state of", name, dom.managedSaveRemove, 0)

    def save_memory_image(self, name: str, path: Path) -> None:
        dom = self._domain(name)
        if not dom.isActive():
            raise InvalidState(f"VM {name!r} is not running", fix="start it first", backend=self.name)
        try:
            dom.saveFlags(str(Path(path).absolute()), None, 0)
        except self._libvirt.libvirtError as exc:
            raise self._save_error(exc, "save the memory of", name) from exc

    def restore_memory_image(self, spec: VMSpec, path: Path) -> None:
        path = Path(path).absolute()
        if not path.is_file() and not self.remote:
            raise OperationFailed(f"memory image {path} does not exist", backend=self.name)
        saved_xml = self._call("read the memory image of", spec.name, self._conn.saveImageGetXMLDesc, str(path), 0)
        saved_root = ET.fromstring(saved_xml)
        image_uuid = saved_root.findtext("uuid")
        image_name = saved_root.findtext("name")
        if image_name != spec.name:
            # Saved by another VM (an imported state, a renamed project): libvirt restores only under
            # the embedded name and UUID, so the image is made to name this VM; the ABI check against
            # the new definition still refuses other hardware.
            if self.remote:
                raise InvalidState(
                    f"memory image {path} belongs to VM {image_name!r}, not {spec.name!r}",
                    fix="restore without the memory image", backend=self.name,
                )
            exists = self.exists(spec.name)
            image_uuid = self._domain(spec.name).UUIDString() if exists else str(uuid_mod.uuid4())
            save_image.rename(path, spec.name, image_uuid)
        if self.exists(spec.name):
            dom = self._domain(spec.name)
            if dom.isActive():
                raise InvalidState(f"VM {spec.name!r} is running", fix="power it off first", backend=self.name)
            if dom.UUIDString() != image_uuid:  # same name, another incarnation: adopt the image's UUID
                self.delete(spec.name)
            else:
                self.discard_saved_state(spec.name)
        xml = domain_xml.build_domain_xml(spec, self._options(uuid=image_uuid))
        with self._defining(spec.name):
            self._conn.defineXML(xml)
        if not self.remote:  # QEMU opens the console log and channel socket as it resumes
            for file in (spec.serial_log, spec.channel_socket):
                if file is not None:
                    Path(file).parent.mkdir(parents=True, exist_ok=True)
        self._call("restore the memory image of", spec.name, self._conn.restoreFlags, str(path), xml, 0)

    def memory_image_stack(self, path: Path) -> dict[str, str | int]:
        path = Path(path).absolute()
        xml = self._call("read the memory image", None, self._conn.saveImageGetXMLDesc, str(path), 0)
        root = ET.fromstring(xml)
        memory_kib = int(root.findtext("memory") or 0)  # libvirt formats the definition in KiB
        type_el = root.find("os/type")
        return {
            "hypervisor": self.name,
            "domain_type": root.get("type") or "",
            "qemu": self._qemu_version(),
            "arch": type_el.get("arch", "") if type_el is not None else "",
            "machine": type_el.get("machine", "") if type_el is not None else "",
            "memory_mib": memory_kib // 1024,
            "cpus": int(root.findtext("vcpu") or 0),
        }

    def memory_stack(self, spec: VMSpec) -> dict[str, str | int]:
        domain_type = self.accelerator.domain_type
        machine = spec.extra.get("machine", "q35")
        caps = None
        try:
            caps = ET.fromstring(self._conn.getDomainCapabilities(None, "x86_64", machine, domain_type, 0))
        except self._libvirt.libvirtError:
            pass
        return {
            "hypervisor": self.name,
            "domain_type": domain_type,
            "qemu": self._qemu_version(),
            "arch": "x86_64",
            "machine": (caps.findtext("machine") if caps is not None else None) or machine,
            "memory_mib": spec.memory_mib,
            "cpus": spec.cpus,
        }

    def _qemu_version(self) -> str:
        return _version_text(self._call("read the QEMU version", None, self._conn.getVersion))

    # -- overlay chain -----------------------------------------------------------------------
    def swap_disk(self, name: str, label: str, new_top: Path) -> None:
        dom = self._domain(name)
        spec = self._stored_spec(dom, name)
        try:
            new_spec = domain_xml.with_disk_path(spec, label, new_top)
        except KeyError:
            raise VMNotFound(f"VM {name!r} has no disk labelled {label!r}", backend=self.name) from None
        current = self._state_of(dom, name)
        if current is VMState.SAVED:
            raise InvalidState(
                f"cannot swap a disk of VM {name!r} while it has a saved memory state",
                fix="resume it (the swap then happens live) or discard its saved state", backend=self.name,
            )
        if dom.isActive():
            self._swap_live(dom, spec, new_spec, label, Path(new_top))
        else:
            self.redefine(new_spec)

    def _swap_live(self, dom: Any, spec: VMSpec, new_spec: VMSpec, label: str, new_top: Path) -> None:
        lv = self._libvirt
        flags = (
            lv.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            | lv.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
            | lv.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
            | lv.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
        )
        xml = domain_xml.snapshot_xml(spec, label, new_top)
        self._call("swap a disk of", spec.name, dom.snapshotCreateXML, xml, flags)
        # libvirt moved the disk in the live and persistent definitions; the spec follows.
        modify = lv.VIR_DOMAIN_AFFECT_LIVE | (lv.VIR_DOMAIN_AFFECT_CONFIG if dom.isPersistent() else 0)
        self._call(
            "record the new disk of", spec.name, dom.setMetadata, lv.VIR_DOMAIN_METADATA_ELEMENT,
            domain_xml.metadata_element(new_spec), domain_xml.VMLOG_PREFIX, domain_xml.VMLOG_NS, modify,
        )

    def disk_tops(self, name: str) -> dict[str, Path]:
        dom = self._domain(name)
        flags = 0 if dom.isActive() else self._libvirt.VIR_DOMAIN_XML_INACTIVE
        return domain_xml.disk_tops(self._call("read the definition of", name, dom.XMLDesc, flags))

    def watch_states(self, callback: StateCallback) -> Callable[[], None]:
        """Lifecycle events of every domain at this URI, on a connection of their own (see :mod:`events`)."""
        return events.LifecycleWatch(self._libvirt, self.uri, callback).start()

    def console_command(self, name: str) -> list[str]:
        virsh = shutil.which("virsh")
        if virsh is None:
            raise Unsupported(
                "attaching to a console needs virsh", fix="apt-get install libvirt-clients", backend=self.name
            )
        self._domain(name)  # VMNotFound before the user's terminal is handed over
        return [virsh, "-c", self.uri, "console", "--force", name]

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


def _version_text(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"
