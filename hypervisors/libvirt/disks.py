"""The overlay chain on libvirt: moving disks onto the overlays vmlog made, live or stopped, and reading the tops.

A running VM's disks move in one disk-only external snapshot (``snapshotCreateXML`` with all of
them): one call, and every disk freezes at the same instant. :meth:`DiskChain._take_live_snapshot`
is that call's only site, so a guest filesystem freeze can wrap it. A running VM's chain is shortened
by :meth:`DiskChain.repoint_disks`: a shallow block copy onto a new top over a checkpoint, then a pivot.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hypervisors.base import VMState
from hypervisors.errors import InvalidState, VMNotFound
from hypervisors.libvirt import connection, domain_xml
from hypervisors.libvirt.core import maps_libvirt_errors
from hypervisors.libvirt.lifecycle import Lifecycle
from hypervisors.libvirt.states import NOSTATE, map_state
from hypervisors.spec import VMSpec

PIVOT_TIMEOUT = 60.0  # seconds a shallow copy may take to be ready before it is cancelled


class DiskChain(Lifecycle):
    """``swap_disks`` and ``disk_tops``: libvirt runs the disks, vmlog owns the qcow2 chains under them.

    ``vm_states`` lives here too: the states of all of a project list's VMs in one listing.
    """

    @maps_libvirt_errors("swap a disk of")
    def swap_disk(self, name: str, label: str, new_top: Path) -> None:
        self.swap_disks(name, {label: new_top})

    @maps_libvirt_errors("swap the disks of")
    def swap_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        """Move every disk named in ``new_tops`` onto its new overlay; on a running VM in one atomic snapshot."""
        dom = self._domain(name)
        spec = self._stored_spec(dom, name)
        new_spec = spec
        for label, new_top in new_tops.items():
            try:
                new_spec = domain_xml.with_disk_path(new_spec, label, new_top)
            except KeyError:
                raise VMNotFound(f"VM {name!r} has no disk labelled {label!r}", backend=self.name) from None
        current = self._state_of(dom, name)
        if current is VMState.SAVED:
            raise InvalidState(
                f"cannot swap a disk of VM {name!r} while it has a saved memory state",
                fix="resume it (the swap then happens live) or discard its saved state", backend=self.name,
            )
        if self._is_active(dom, name):
            self._swap_live(dom, spec, new_spec, {label: Path(top) for label, top in new_tops.items()})
        else:
            self.redefine(new_spec)

    def _swap_live(self, dom: Any, spec: VMSpec, new_spec: VMSpec, new_tops: dict[str, Path]) -> None:
        self._check_overlays_fit(dom, spec.name, new_tops)
        self._take_live_snapshot(dom, spec.name, live_snapshot_xml(spec, new_tops))
        self._record_spec(dom, new_spec)  # libvirt moved the disks in the live and persistent definitions

    def _check_overlays_fit(self, dom: Any, name: str, new_tops: dict[str, Path]) -> None:
        """Refuse to put a running disk on an overlay that backs onto another file than the one the VM runs on.

        The guest would see another disk at once (what it wrote since is not under the overlay): this is
        what a save would do after a crash left the VM on a layer its project does not name yet.
        """
        running = domain_xml.disk_tops(self._call("read the definition of", name, dom.XMLDesc, 0))
        for label, top in new_tops.items():
            backing = backing_file(Path(top))
            if backing is None or label not in running or backing.resolve() == Path(running[label]).resolve():
                continue
            raise InvalidState(
                f"the {label} disk of VM {name!r} runs on {running[label]}, not on {backing.name} under the new layer",
                fix="`vml doctor --repair` (it takes the layer the VM runs on as the live one)", backend=self.name,
            )

    def _take_live_snapshot(self, dom: Any, name: str, xml: str) -> None:
        """The one ``snapshotCreateXML`` of a live save: all disks at once, atomically, no libvirt metadata.

        Wrap this (not its callers) to quiesce the guest's filesystems around the instant of the save.
        """
        lv = self._libvirt
        flags = (
            lv.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            | lv.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
            | lv.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
            | lv.VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT
        )
        self._call("swap the disks of", name, dom.snapshotCreateXML, xml, flags)

    @maps_libvirt_errors("move the disks of")
    def repoint_disks(self, name: str, new_tops: dict[str, Path]) -> None:
        """Move each labelled disk onto a new top whose chain shows what its current top shows.

        On a running VM each disk is a shallow block copy onto the pre-made file (only the current
        top's own clusters are copied, guest writes are mirrored meanwhile), then a pivot: the guest
        sees the same disk, QEMU the new, shorter chain. A stopped VM is redefined.
        """
        dom = self._domain(name)
        spec = self._stored_spec(dom, name)
        if not self._is_active(dom, name):
            for label, top in new_tops.items():
                spec = domain_xml.with_disk_path(spec, label, top)
            self.redefine(spec)
            return
        targets = {disk.label: dev for disk, dev, _bus in domain_xml.disk_targets(spec) if disk.label}
        for label, top in new_tops.items():
            if label not in targets:
                raise VMNotFound(f"VM {name!r} has no disk labelled {label!r}", backend=self.name)
            self._shallow_copy_and_pivot(dom, name, targets[label], Path(top))
            spec = domain_xml.with_disk_path(spec, label, top)
            self._record_spec(dom, spec)

    def _shallow_copy_and_pivot(self, dom: Any, name: str, dev: str, top: Path) -> None:
        lv = self._libvirt
        disk = ET.Element("disk", type="file")
        ET.SubElement(disk, "driver", type="qcow2")
        ET.SubElement(disk, "source", file=str(top.absolute()))
        flags = (
            lv.VIR_DOMAIN_BLOCK_COPY_SHALLOW | lv.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
            | lv.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        )
        self._call("copy a disk of", name, dom.blockCopy, dev, ET.tostring(disk, encoding="unicode"), None, flags)
        deadline = time.monotonic() + PIVOT_TIMEOUT
        while True:
            try:
                dom.blockJobAbort(dev, lv.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
                return
            except lv.libvirtError as exc:
                if time.monotonic() > deadline:
                    self._call("cancel the copy of a disk of", name, dom.blockJobAbort, dev, 0)
                    raise connection.map_error(exc, "move a disk of", name) from exc
            time.sleep(0.01)  # the copy is not ready yet: a top holds seconds of guest writes, not more

    def _record_spec(self, dom: Any, spec: VMSpec) -> None:
        """The spec in the domain's metadata follows the disks libvirt moved (live and persistent)."""
        lv = self._libvirt
        persistent = self._call("read the definition of", spec.name, dom.isPersistent)
        modify = lv.VIR_DOMAIN_AFFECT_LIVE | (lv.VIR_DOMAIN_AFFECT_CONFIG if persistent else 0)
        self._call(
            "record the new disk of", spec.name, dom.setMetadata, lv.VIR_DOMAIN_METADATA_ELEMENT,
            domain_xml.metadata_element(spec), domain_xml.VMLOG_PREFIX, domain_xml.VMLOG_NS, modify,
        )

    @maps_libvirt_errors("list the VMs")
    def vm_states(self, names: list[str]) -> dict[str, VMState | None]:
        """Each VM of ``names`` with its state (None: not defined) from two listing calls, as ``virsh list --all``."""
        lv = self._libvirt
        found: dict[str, VMState | None] = dict.fromkeys(names)
        saved_flag = lv.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE
        saved = {d.name() for d in self._call("list the VMs", None, self._conn.listAllDomains, saved_flag)}
        stats = self._call("list the VMs", None, self._conn.getAllDomainStats, lv.VIR_DOMAIN_STATS_STATE, 0)
        for dom, values in stats:
            name = dom.name()
            if name in found:
                state = int(values.get("state.state", NOSTATE))
                found[name] = map_state(state, int(values.get("state.reason", 0)), name in saved)
        return found

    @maps_libvirt_errors("read the disks of")
    def disk_tops(self, name: str) -> dict[str, Path]:
        dom = self._domain(name)
        flags = 0 if self._is_active(dom, name) else self._libvirt.VIR_DOMAIN_XML_INACTIVE
        return domain_xml.disk_tops(self._call("read the definition of", name, dom.XMLDesc, flags))


def backing_file(image: Path) -> Path | None:
    """The backing file a qcow2 image's header names (relative names from the image's directory); None if none.

    Read from the header (no qemu-img, no chain opened): None too for a file that is missing or not qcow2.
    """
    try:
        with open(image, "rb") as fh:
            header = fh.read(20)
            if len(header) < 20 or header[:4] != b"QFI\xfb":
                return None
            offset, size = int.from_bytes(header[8:16], "big"), int.from_bytes(header[16:20], "big")
            if not offset or not 0 < size <= 1023:
                return None
            fh.seek(offset)
            name = fh.read(size).decode()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(name) if Path(name).is_absolute() else image.parent / name


def live_snapshot_xml(spec: VMSpec, new_tops: dict[str, Path]) -> str:
    """A disk-only external snapshot moving each labelled disk onto its new top, every other disk untouched."""
    root = ET.Element("domainsnapshot")
    ET.SubElement(root, "description").text = "vmlog: " + ", ".join(
        f"disk {label} onto {Path(top).name}" for label, top in sorted(new_tops.items())
    )
    disks = ET.SubElement(root, "disks")
    found = set()
    for disk, dev, _bus in domain_xml.disk_targets(spec):
        top = new_tops.get(disk.label) if disk.device == "disk" and disk.label else None
        if top is None:
            ET.SubElement(disks, "disk", name=dev, snapshot="no")
            continue
        found.add(disk.label)
        disk_el = ET.SubElement(disks, "disk", name=dev, snapshot="external", type="file")
        ET.SubElement(disk_el, "driver", type="qcow2")
        ET.SubElement(disk_el, "source", file=str(Path(top).absolute()))
    missing = set(new_tops) - found
    if missing:
        raise KeyError(sorted(missing)[0])
    return ET.tostring(root, encoding="unicode")
