"""Domain XML generation and reading back, without a libvirt daemon."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hypervisors.errors import Unsupported
from hypervisors.libvirt import domain_xml
from hypervisors.libvirt.domain_xml import QEMU_NS, DomainOptions
from hypervisors.spec import DiskSpec, NicSpec, PortForward, SharedFolder, VMSpec


def _spec(tmp_path: Path, **changes: object) -> VMSpec:
    spec = VMSpec(
        name="xmltest",
        cpus=2,
        memory_mib=384,
        disks=(
            DiskSpec(path=tmp_path / "system.qcow2", label="system"),
            DiskSpec(path=tmp_path / "seed.iso", format="raw", device="cdrom", label="seed"),
            DiskSpec(path=tmp_path / "scratch.raw", format="raw", label="scratch"),
        ),
        nics=(NicSpec(forwards=(PortForward(host_port=2222, guest_port=22),)),),
        serial_log=tmp_path / "serial.log",
        channel_socket=tmp_path / "agent.sock",
    )
    return spec.replace(**changes) if changes else spec


def test_disks_in_order_with_explicit_formats(tmp_path: Path) -> None:
    root = ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path), DomainOptions(domain_type="qemu")))
    assert root.get("type") == "qemu"
    disks = root.findall("devices/disk")
    assert [(d.find("target").get("dev"), d.find("target").get("bus")) for d in disks] == [
        ("vda", "virtio"), ("sda", "scsi"), ("vdb", "virtio"),
    ]  # fmt: skip
    assert [d.find("driver").get("type") for d in disks] == ["qcow2", "raw", "raw"]
    assert disks[1].get("device") == "cdrom" and disks[1].find("readonly") is not None
    assert root.find("features/acpi") is not None
    assert root.findtext("memory") == "384" and root.find("memory").get("unit") == "MiB"
    assert root.findtext("vcpu") == "2"


def test_serial_ports_and_channel_socket(tmp_path: Path) -> None:
    root = ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path), DomainOptions()))
    serials = root.findall("devices/serial")
    assert serials[0].get("type") == "pty"  # attachable with `virsh console`
    assert serials[0].find("log").attrib == {"file": str(tmp_path / "serial.log"), "append": "on"}
    assert serials[1].get("type") == "unix"
    assert serials[1].find("source").attrib == {"mode": "bind", "path": str(tmp_path / "agent.sock")}
    assert serials[1].find("target").get("port") == "1"


def test_port_forwards_on_the_qemu_command_line(tmp_path: Path) -> None:
    root = ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path), DomainOptions()))
    args = [a.get("value") for a in root.findall(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")]
    assert args[0] == "-netdev"
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in args[1]
    assert args[2] == "-device" and args[3].startswith("virtio-net-pci,netdev=vmlnet0,mac=52:54:00:")
    again = ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path), DomainOptions()))
    assert [a.get("value") for a in again.iter(f"{{{QEMU_NS}}}arg")] == args  # stable MAC


def test_kvm_type_seclabel_and_uuid(tmp_path: Path) -> None:
    options = DomainOptions(domain_type="kvm", dac_label="+1000:+1000", uuid="c7a5fdbd-cdaf-9455-926a-d65c16db1809")
    root = ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path), options))
    assert root.get("type") == "kvm"
    seclabel = root.find("seclabel")
    assert seclabel.attrib == {"type": "static", "model": "dac", "relabel": "no"}
    assert seclabel.findtext("label") == "+1000:+1000"
    assert root.findtext("uuid") == options.uuid


def test_shared_folders_use_virtiofs_with_shared_memory(tmp_path: Path) -> None:
    spec = _spec(tmp_path, shared_folders=(SharedFolder(tag="work", host_path=tmp_path),))
    root = ET.fromstring(domain_xml.build_domain_xml(spec, DomainOptions()))
    fs = root.find("devices/filesystem")
    assert fs.find("driver").get("type") == "virtiofs"
    assert fs.find("target").get("dir") == "work"
    assert root.find("memoryBacking/source").get("type") == "memfd"
    assert root.find("memoryBacking/access").get("mode") == "shared"
    assert ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path), DomainOptions())).find("memoryBacking") is None


def test_spec_round_trips_through_metadata_and_disk_tops(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    xml = domain_xml.build_domain_xml(spec, DomainOptions())
    assert domain_xml.read_spec(xml) == spec
    assert domain_xml.disk_tops(xml) == {"system": tmp_path / "system.qcow2", "scratch": tmp_path / "scratch.raw"}


def test_snapshot_xml_moves_one_disk_only(tmp_path: Path) -> None:
    root = ET.fromstring(domain_xml.snapshot_xml(_spec(tmp_path), "system", tmp_path / "system-1.qcow2"))
    disks = {d.get("name"): d for d in root.findall("disks/disk")}
    assert disks["vda"].get("snapshot") == "external"
    assert disks["vda"].find("source").get("file") == str(tmp_path / "system-1.qcow2")
    assert disks["vda"].find("driver").get("type") == "qcow2"
    assert disks["sda"].get("snapshot") == "no" and disks["vdb"].get("snapshot") == "no"
    with pytest.raises(KeyError):
        domain_xml.snapshot_xml(_spec(tmp_path), "nope", tmp_path / "x.qcow2")


def test_with_disk_path_and_hardware_differs(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    moved = domain_xml.with_disk_path(spec, "scratch", tmp_path / "scratch-1.qcow2")
    assert moved.disk("scratch").format == "qcow2"
    assert domain_xml.hardware_differs(spec, moved)
    assert not domain_xml.hardware_differs(spec, spec.replace(serial_log=tmp_path / "other.log"))


def test_rejects_what_libvirt_cannot_express(tmp_path: Path) -> None:
    with pytest.raises(Unsupported, match="Unix socket"):
        domain_xml.build_domain_xml(_spec(tmp_path, channel_socket=tmp_path / ("s" * 120)), DomainOptions())
    with pytest.raises(Unsupported, match="machine"):
        domain_xml.build_domain_xml(_spec(tmp_path, extra={"machine": "virt"}), DomainOptions())


def test_a_hot_plugged_share_is_the_device_a_definition_carries(tmp_path: Path) -> None:
    folder = SharedFolder("results", tmp_path / "out")
    alone = ET.fromstring(domain_xml.filesystem_xml(folder))
    defined = ET.fromstring(domain_xml.build_domain_xml(_spec(tmp_path, shared_folders=(folder,)), DomainOptions()))
    (in_domain,) = defined.findall("devices/filesystem")
    assert [(e.tag, e.attrib) for e in alone.iter()] == [(e.tag, e.attrib) for e in in_domain.iter()]
    assert alone.find("driver").get("type") == "virtiofs"
    assert alone.find("source").get("dir") == str((tmp_path / "out").absolute())
    assert alone.find("target").get("dir") == "results"
