"""Shared folders of a running libvirt domain: virtiofs devices attached and detached live.

The device is the same ``<filesystem>`` a definition carries for a share at boot
(:func:`~hypervisors.libvirt.domain_xml.filesystem_xml`). Only the live domain changes: a share that
should outlast the run belongs in the spec. QEMU accepts a virtiofs device only from a guest booted
with shared memory (a definition with at least one share has it); libvirt's refusal reaches the
caller word for word in an ``OperationFailed``.
"""

from __future__ import annotations

from typing import Any

from hypervisors.base import Capability
from hypervisors.errors import InvalidState, OperationFailed
from hypervisors.libvirt import connection, domain_xml
from hypervisors.libvirt.core import LibvirtCore, maps_libvirt_errors
from hypervisors.spec import SharedFolder


class SharedFolderHotplug(LibvirtCore):
    """``attach_shared_folder``/``detach_shared_folder`` through ``virDomainAttachDeviceFlags``."""

    @maps_libvirt_errors("add a shared folder to")
    def attach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        dom = self._running_domain(vm_name, "add a shared folder to")
        self._change_device(dom, vm_name, folder, dom.attachDeviceFlags, f"attach shared folder {folder.tag!r} to")

    @maps_libvirt_errors("remove a shared folder from")
    def detach_shared_folder(self, vm_name: str, folder: SharedFolder) -> None:
        dom = self._running_domain(vm_name, "remove a shared folder from")
        self._change_device(dom, vm_name, folder, dom.detachDeviceFlags,
                            f"detach shared folder {folder.tag!r} from")

    def _running_domain(self, vm_name: str, what: str) -> Any:
        self.require(Capability.SHARED_FOLDER_HOTPLUG, f"{what} a running VM (the {self.driver} driver lacks virtiofs)")
        dom = self._domain(vm_name)
        if not self._is_active(dom, vm_name):
            raise InvalidState(f"cannot {what} VM {vm_name!r}: it is not running",
                               fix="change the VM's spec instead; the share then comes with the next boot",
                               backend=self.name)
        return dom

    def _change_device(self, dom: Any, vm_name: str, folder: SharedFolder, call: Any, what: str) -> None:
        try:
            call(domain_xml.filesystem_xml(folder), self._libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except self._libvirt.libvirtError as exc:
            if connection.error_code(exc) == connection.ERR_NO_DOMAIN:
                raise connection.map_error(exc, what, vm_name) from exc
            raise OperationFailed(
                f"libvirt cannot {what} the running VM {vm_name!r}: {exc}",
                fix="share it at the next boot instead: shut the VM down and start it again",
                backend=self.name,
            ) from exc
