"""Memory images of libvirt domains: saving one with a state, restoring from it, and the stack it needs.

A memory image resumes only on the hypervisor stack that wrote it, so next to saving and restoring
this module describes that stack (QEMU version, machine type, memory, CPUs) for a bundle to record.
"""

from __future__ import annotations

import uuid as uuid_mod
import xml.etree.ElementTree as ET
from pathlib import Path

from hypervisors.base import Capability
from hypervisors.errors import InvalidState, OperationFailed
from hypervisors.libvirt import domain_xml, save_image
from hypervisors.libvirt.core import maps_libvirt_errors, version_text
from hypervisors.libvirt.lifecycle import Lifecycle
from hypervisors.spec import VMSpec


class MemoryImages(Lifecycle):
    """``save_memory_image``/``restore_memory_image`` and the stack descriptions of the contract."""

    @maps_libvirt_errors("save the memory of")
    def save_memory_image(self, name: str, path: Path) -> None:
        self.require(Capability.MEMORY_IMAGE, f"write a memory image (the {self.driver} driver runs no QEMU)")
        dom = self._domain(name)
        if not self._is_active(dom, name):
            raise InvalidState(f"VM {name!r} is not running", fix="start it first", backend=self.name)
        try:
            dom.saveFlags(str(Path(path).absolute()), None, 0)
        except self._libvirt.libvirtError as exc:
            raise self._save_error(exc, "save the memory of", name) from exc

    @maps_libvirt_errors("restore the memory image of")
    def restore_memory_image(self, spec: VMSpec, path: Path) -> None:
        self.require(Capability.MEMORY_IMAGE, f"restore a memory image (the {self.driver} driver runs no QEMU)")
        path = Path(path).absolute()
        if not path.is_file() and not self.remote:
            raise OperationFailed(f"memory image {path} does not exist", backend=self.name)
        image_uuid = self._adopt_image(spec, path)
        if self.exists(spec.name):
            dom = self._domain(spec.name)
            if self._is_active(dom, spec.name):
                raise InvalidState(f"VM {spec.name!r} is running", fix="power it off first", backend=self.name)
            if dom.UUIDString() != image_uuid:  # same name, another incarnation: adopt the image's UUID
                self.delete(spec.name)
            else:
                self.discard_saved_state(spec.name)
        xml = domain_xml.build_domain_xml(spec, self._options(uuid=image_uuid))
        self._define_xml(spec.name, xml)
        if not self.remote:  # QEMU opens the console log and channel socket as it resumes
            for file in (spec.serial_log, spec.channel_socket):
                if file is not None:
                    Path(file).parent.mkdir(parents=True, exist_ok=True)
        self._call("restore the memory image of", spec.name, self._conn.restoreFlags, str(path), xml, 0)

    def _adopt_image(self, spec: VMSpec, path: Path) -> str | None:
        """The UUID the VM must have to restore ``path``, after making an image of another VM name this one.

        libvirt restores only under the embedded name and UUID; an image saved by another VM (an
        imported state, a renamed project) is rewritten to name this VM. The ABI check against the
        new definition still refuses other hardware.
        """
        saved_xml = self._call("read the memory image of", spec.name, self._conn.saveImageGetXMLDesc, str(path), 0)
        saved_root = ET.fromstring(saved_xml)
        image_uuid = saved_root.findtext("uuid")
        if saved_root.findtext("name") == spec.name:
            return image_uuid
        if self.remote:
            raise InvalidState(
                f"memory image {path} belongs to VM {saved_root.findtext('name')!r}, not {spec.name!r}",
                fix="restore without the memory image", backend=self.name,
            )
        image_uuid = self._domain(spec.name).UUIDString() if self.exists(spec.name) else str(uuid_mod.uuid4())
        save_image.rename(path, spec.name, image_uuid)
        return image_uuid

    @maps_libvirt_errors("read the memory image")
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

    @maps_libvirt_errors("describe the memory stack of")
    def memory_stack(self, spec: VMSpec) -> dict[str, str | int]:
        domain_type = self.accelerator.domain_type
        machine = spec.extra.get("machine", "q35")
        caps = self._domain_capabilities(domain_type, machine) if self.runs_qemu else None
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
        return version_text(self._call("read the QEMU version", None, self._conn.getVersion))
