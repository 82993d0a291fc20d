"""The overlay chain on libvirt: moving a disk onto the overlay vmlog made, live or stopped, and reading the tops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypervisors.base import VMState
from hypervisors.errors import InvalidState, VMNotFound
from hypervisors.libvirt import domain_xml
from hypervisors.libvirt.core import maps_libvirt_errors
from hypervisors.libvirt.lifecycle import Lifecycle
from hypervisors.spec import VMSpec


class DiskChain(Lifecycle):
    """``swap_disk`` and ``disk_tops``: libvirt runs the disk, vmlog owns the qcow2 chain under it."""

    @maps_libvirt_errors("swap a disk of")
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
        if self._is_active(dom, name):
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
        persistent = self._call("read the definition of", spec.name, dom.isPersistent)
        modify = lv.VIR_DOMAIN_AFFECT_LIVE | (lv.VIR_DOMAIN_AFFECT_CONFIG if persistent else 0)
        self._call(
            "record the new disk of", spec.name, dom.setMetadata, lv.VIR_DOMAIN_METADATA_ELEMENT,
            domain_xml.metadata_element(new_spec), domain_xml.VMLOG_PREFIX, domain_xml.VMLOG_NS, modify,
        )

    @maps_libvirt_errors("read the disks of")
    def disk_tops(self, name: str) -> dict[str, Path]:
        dom = self._domain(name)
        flags = 0 if self._is_active(dom, name) else self._libvirt.VIR_DOMAIN_XML_INACTIVE
        return domain_xml.disk_tops(self._call("read the definition of", name, dom.XMLDesc, flags))
