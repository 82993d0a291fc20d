"""``LibvirtHypervisor``: the KVM/QEMU backend on libvirt-python, overlay-chain snapshot model.

The class only puts together the modules that each do one job (:mod:`core`, :mod:`lifecycle`,
:mod:`memory`, :mod:`disks`, :mod:`shares`) and adds what concerns the connection as a whole:
the probe, state events and the console command.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from collections.abc import Callable

from hypervisors.base import Capability, DisplayEndpoint, HostStorage, Probe, StateCallback, VMState
from hypervisors.errors import Unsupported
from hypervisors.libvirt import accel, connection, domain_xml, events, remote_pool
from hypervisors.libvirt.core import maps_libvirt_errors, version_text
from hypervisors.libvirt.disks import DiskChain
from hypervisors.libvirt.memory import MemoryImages
from hypervisors.libvirt.remote_host import RemoteHostChecks
from hypervisors.libvirt.remote_storage import RemoteStorage
from hypervisors.libvirt.shares import SharedFolderHotplug


class LibvirtHypervisor(RemoteHostChecks, SharedFolderHotplug, DiskChain, MemoryImages):
    """One libvirt connection; VMs are libvirt domains whose VMSpec lives in their metadata.

    Any libvirt URI works (``$VMLOG_LIBVIRT_URI``); on a driver other than QEMU's, such as the
    built-in ``test:///default``, the capabilities shrink to what that driver does.
    """

    def probe(self) -> Probe:
        lv = self._libvirt
        details: dict[str, str] = {"uri": self.uri}
        warnings: list[str] = []
        try:
            details["libvirt"] = version_text(self._conn.getLibVersion())
            details["hypervisor"] = f"{self._conn.getType()} {version_text(self._conn.getVersion())}"
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
        if connection.is_local_system(self.uri) and (slow := accel.system_daemon_device_problem()):
            warnings.append(slow)
        if not self.remote:
            qemu_img = shutil.which("qemu-img")
            details["qemu-img"] = qemu_img or "missing"
            if qemu_img is None:
                return Probe(self.name, False, "qemu-img is not installed", fix="apt-get install qemu-utils",
                             details=details, warnings=warnings)
        summary = f"libvirt {details['libvirt']} at {self.uri}, {details['hypervisor']}, {decision.accelerator}"
        return Probe(self.name, True, summary, details=details, warnings=warnings)

    @maps_libvirt_errors("watch the VM states at")
    def watch_states(self, callback: StateCallback) -> Callable[[], None]:
        """Lifecycle events of every domain at this URI, on a connection of their own (see :mod:`events`)."""
        return events.LifecycleWatch(self._libvirt, self.uri, callback).start()

    @maps_libvirt_errors("attach a console to")
    def console_command(self, name: str) -> list[str]:
        virsh = shutil.which("virsh")
        if virsh is None:
            raise Unsupported(
                "attaching to a console needs virsh", fix="apt-get install libvirt-clients", backend=self.name
            )
        self._domain(name)  # VMNotFound before the user's terminal is handed over
        return [virsh, "-c", self.uri, "console", "--force", name]

    @property
    def capabilities(self) -> Capability:
        return super().capabilities | Capability.DISPLAY  # every domain vmlog defines has a VNC screen

    def _options(self, uuid: str | None = None) -> domain_xml.DomainOptions:
        return dataclasses.replace(super()._options(uuid), spice=self.offers_spice)

    @functools.cached_property
    def offers_spice(self) -> bool:
        """The host's QEMU can serve a screen by SPICE (an optional QEMU module; asked of libvirt once)."""
        return domain_xml.offers_graphics(self._domain_capabilities(self.accelerator.domain_type), "spice")

    @maps_libvirt_errors("find the screen of")
    def display_endpoint(self, vm_name: str) -> DisplayEndpoint:
        return self.display_endpoints(vm_name)[0]

    @maps_libvirt_errors("find the screens of")
    def display_endpoints(self, vm_name: str) -> list[DisplayEndpoint]:
        dom = self._domain(vm_name)
        if self.state(vm_name) not in (VMState.RUNNING, VMState.PAUSED):
            raise Unsupported(f"VM {vm_name!r} is not running, so it has no screen to show",
                              fix="start the VM first", backend=self.name)
        endpoints = domain_xml.display_endpoints(dom.XMLDesc(0))
        if not endpoints:
            raise Unsupported(f"VM {vm_name!r} has no display server (defined before vmlog gave VMs a screen,"
                              " or on a driver without one)", fix="shut the VM down and start it again",
                              backend=self.name)
        return endpoints

    @maps_libvirt_errors("open the storage pool of")
    def host_storage(self, storage_owner: str) -> HostStorage:
        """vmlog's pool for the home ``storage_owner`` on this connection's host (see :mod:`remote_pool`).

        Any libvirt connection has one, local ones too; vmlog uses it for the projects on a remote host.
        """
        return RemoteStorage(self._conn, remote_pool.pool_name(storage_owner), host=self.uri)
