"""Defining, starting, stopping, saving (managed save) and deleting libvirt domains.

Works on any libvirt driver: where a driver lacks a flag vmlog asks for (the test driver has no
ACPI power-button flag and knows fewer undefine flags), the call is repeated with fewer flags
rather than failing.
"""

from __future__ import annotations

import time
from typing import Any

from hypervisors.base import VMState
from hypervisors.errors import InvalidState, OperationTimeout, VMExists
from hypervisors.libvirt import connection, domain_xml
from hypervisors.libvirt.core import LibvirtCore, maps_libvirt_errors
from hypervisors.spec import VMSpec

SHUTDOWN_POLL_SECONDS = 0.2
POWER_BUTTON_REPEAT_SECONDS = 5.0  # a guest still booting may miss the first press


class Lifecycle(LibvirtCore):
    """The lifecycle half of the contract: define/redefine/delete, start/shutdown/poweroff, suspend/resume."""

    @maps_libvirt_errors("define")
    def define(self, spec: VMSpec) -> None:
        if self.exists(spec.name):
            raise VMExists(f"a VM named {spec.name!r} already exists in libvirt ({self.uri})",
                           fix="choose another name, or delete the old VM", backend=self.name)
        self._define_xml(spec.name, domain_xml.build_domain_xml(spec, self._options()))

    @maps_libvirt_errors("redefine")
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
        self._define_xml(spec.name, domain_xml.build_domain_xml(spec, self._options(uuid=dom.UUIDString())))

    @maps_libvirt_errors("delete")
    def delete(self, name: str) -> None:
        dom = self._domain(name)
        if self._is_active(dom, name):
            self._destroy(dom, name)
        self._undefine(dom, name)

    def _undefine(self, dom: Any, name: str) -> None:
        """Undefine with everything libvirt keeps for the domain, dropping the flags a driver does not know.

        A managed save image must go with the domain; if the driver cannot remove it as part of the
        undefine, it is removed first.
        """
        lv = self._libvirt
        managed_save = lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        for flags in (
            managed_save | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | lv.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
            | lv.VIR_DOMAIN_UNDEFINE_NVRAM,
            managed_save | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | lv.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
            managed_save | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
            managed_save,
        ):
            try:
                dom.undefineFlags(flags)
                return
            except lv.libvirtError as exc:
                if connection.error_code(exc) == connection.ERR_NO_SUPPORT:
                    break  # a driver without undefineFlags at all: plain undefine below
                if not connection.rejects_flags(exc):
                    raise connection.map_error(exc, "delete", name) from exc
        if self._call("read the state of", name, dom.hasManagedSaveImage, 0):
            self._call("discard the saved state of", name, dom.managedSaveRemove, 0)
        self._call("delete", name, dom.undefine)

    @maps_libvirt_errors("read the state of")
    def state(self, name: str) -> VMState:
        return self._state_of(self._domain(name), name)

    @maps_libvirt_errors("start")
    def start(self, name: str) -> None:
        dom = self._domain(name)
        if self._is_active(dom, name):
            raise InvalidState(f"VM {name!r} is already running", backend=self.name)
        self._call("start", name, dom.createWithFlags, 0)  # continues from a managed save if there is one

    @maps_libvirt_errors("shut down")
    def shutdown(self, name: str, timeout: float = 60.0) -> None:
        dom = self._domain(name)
        if not self._is_active(dom, name):
            raise InvalidState(f"VM {name!r} is not running", fix="nothing to shut down", backend=self.name)
        deadline = time.monotonic() + timeout
        next_press = 0.0
        while True:
            now = time.monotonic()
            if not self._is_active(dom, name):
                return
            if now >= deadline:
                raise OperationTimeout(
                    f"VM {name!r} did not power off within {timeout:g} s after the ACPI power button",
                    fix="the guest ignores ACPI; power it off instead (data not yet written may be lost)",
                    backend=self.name,
                )
            if now >= next_press:
                if not self._press_power_button(dom, name):
                    return
                next_press = now + POWER_BUTTON_REPEAT_SECONDS
            time.sleep(SHUTDOWN_POLL_SECONDS)

    def _press_power_button(self, dom: Any, name: str) -> bool:
        """Ask the guest to power off; False if it is already off. Drivers without the ACPI flag get the default."""
        lv = self._libvirt
        try:
            try:
                dom.shutdownFlags(lv.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except lv.libvirtError as exc:
                if not connection.rejects_flags(exc):
                    raise
                dom.shutdownFlags(0)
        except lv.libvirtError as exc:
            if self._is_active(dom, name):
                raise connection.map_error(exc, "shut down", name) from exc
            return False
        return True

    @maps_libvirt_errors("power off")
    def poweroff(self, name: str) -> None:
        dom = self._domain(name)
        if self._is_active(dom, name):
            self._destroy(dom, name)

    def _destroy(self, dom: Any, name: str) -> None:
        try:
            dom.destroy()
        except self._libvirt.libvirtError as exc:
            if self._is_active(dom, name):  # it may have stopped on its own meanwhile
                raise connection.map_error(exc, "power off", name) from exc

    @maps_libvirt_errors("suspend")
    def suspend(self, name: str) -> None:
        dom = self._domain(name)
        if not self._is_active(dom, name):
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

    @maps_libvirt_errors("resume")
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

    @maps_libvirt_errors("discard the saved state of")
    def discard_saved_state(self, name: str) -> None:
        dom = self._domain(name)
        if self._call("read the state of", name, dom.hasManagedSaveImage, 0):
            self._call("discard the saved state of", name, dom.managedSaveRemove, 0)
