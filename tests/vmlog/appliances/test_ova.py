"""OVF/OVA as VirtualBox and VMware write them: real descriptors and manifests, packages built around them."""

from __future__ import annotations

import hashlib
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from boxmaker import OVA, convert, pack, raw_disk

from hypervisors import qemu_img
from vmlog.appliances.ova import unpack_ova, write_ova
from vmlog.appliances.ovf import parse_manifest, parse_ovf
from vmlog.appliances.ovf_writer import ExportDisk, build_descriptor
from vmlog.appliances.pull import import_local_image, unpack_file
from vmlog.errors import IntegrityError
from vmlog.store import ImageStore

RAGGED = "RAGged Edge Box"


def test_real_descriptors_read() -> None:
    vbox7 = parse_ovf((OVA / "virtualbox-ragged-edge-box-ovf10.ovf").read_bytes())
    assert (vbox7.version, vbox7.cpus, vbox7.memory_mib) == ("1.x", 2, 5120)
    assert [(d.href, d.capacity) for d in vbox7.disks] == [(f"{RAGGED}-disk001.vmdk", 4 << 30)]
    vmware = parse_ovf((OVA / "vmware-centos-ovf10.ovf").read_bytes())
    assert (vmware.name, vmware.memory_mib, vmware.disks[0].capacity) == ("centos", 1024, 5 << 30)
    template = (OVA / "virtualbox-untangle-ovf20.ovf.tpl").read_bytes().replace(b"+SIZE+", str(8 << 30).encode())
    ovf2 = parse_ovf(template)
    assert ovf2.version == "2.x" and ovf2.disks[0].href == "untangle.vmdk" and ovf2.memory_mib == 2048


def test_real_manifests_read_and_virtualbox_digest_matches_its_descriptor() -> None:
    entries = parse_manifest((OVA / "virtualbox-ragged-edge-box.mf").read_bytes())
    algo, digest = entries[f"{RAGGED}.ovf"]
    descriptor = (OVA / "virtualbox-ragged-edge-box-ovf10.ovf").read_bytes()
    assert algo == "sha1" and hashlib.sha1(descriptor).hexdigest() == digest
    vmware = parse_manifest((OVA / "govmomi-ttylinux.mf").read_bytes())
    assert set(vmware) == {"ttylinux-pc_i486-16.1.ovf", "ttylinux-pc_i486-16.1-disk1.vmdk"}


def virtualbox_ova(tmp_path: Path, raw: Path, *, tamper: bool = False, list_disk: bool = True) -> Path:
    """An OVA as VirtualBox 7 exports it: the real descriptor, its streamOptimized disk, a SHA1 manifest
    (``SHA1 (file) = hex``), in VirtualBox's member order."""
    descriptor = (OVA / "virtualbox-ragged-edge-box-ovf10.ovf").read_bytes()
    vmdk = convert(raw, tmp_path / "disk001.vmdk", "vmdk", "streamOptimized")
    disk_name = f"{RAGGED}-disk001.vmdk"
    lines = [f"SHA1 ({RAGGED}.ovf) = {hashlib.sha1(descriptor).hexdigest()}"]
    if list_disk:
        lines.append(f"SHA1 ({disk_name}) = {hashlib.sha1(vmdk.read_bytes()).hexdigest()}")
    data = bytearray(vmdk.read_bytes())
    if tamper:
        data[-600] ^= 0xFF
    ova = tmp_path / "ragged.ova"
    manifest = ("\n".join(lines) + "\n").encode()
    pack(ova, [(f"{RAGGED}.ovf", descriptor), (disk_name, bytes(data)), (f"{RAGGED}.mf", manifest)], compress=False)
    return ova


def test_virtualbox_ova_imported(tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "disk.raw", 4 << 30)  # the capacity the real descriptor declares, sparse
    ova = virtualbox_ova(tmp_path, raw)
    store = ImageStore(tmp_path / "images")
    stored = import_local_image(store, ova, name="ragged")  # an .ova is detected as one, not taken as raw
    (image,) = stored.images
    assert image.format == "vmdk" and "SHA1 manifest: 2 files match" in stored.obtained
    assert qemu_img.compare(raw, "raw", store.converted(image.sha256, "qcow2"), "qcow2")


def test_ovf20_vmware_manifest_ova(tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "disk.raw", 16 << 20)
    descriptor = (OVA / "virtualbox-untangle-ovf20.ovf.tpl").read_bytes().replace(b"+SIZE+", str(16 << 20).encode())
    vmdk = convert(raw, tmp_path / "u.vmdk", "vmdk", "streamOptimized").read_bytes()
    manifest = (f"SHA256(untangle.ovf)= {hashlib.sha256(descriptor).hexdigest()}\n"
                f"SHA256(untangle.vmdk)= {hashlib.sha256(vmdk).hexdigest()}\n").encode()  # fmt: skip
    ova = tmp_path / "u.ova"
    pack(ova, [("untangle.ovf", descriptor), ("untangle.mf", manifest), ("untangle.vmdk", vmdk)], compress=False)
    work = tmp_path / "w"
    work.mkdir()
    unpacked = unpack_ova(ova, work)
    assert unpacked.descriptor.version == "2.x" and unpacked.manifest == "SHA256 manifest: 2 files match"
    assert qemu_img.compare(raw, "raw", unpacked.disks[0].path, "vmdk")


@pytest.mark.parametrize("problem", ["tamper", "unlisted"])
def test_bad_manifest_refused_and_nothing_stored(tmp_path: Path, problem: str) -> None:
    ova = virtualbox_ova(tmp_path, raw_disk(tmp_path / "r.raw"), tamper=problem == "tamper",
                         list_disk=problem != "unlisted")  # fmt: skip
    store = ImageStore(tmp_path / "images")
    with pytest.raises(IntegrityError):
        unpack_file(store, ova, "ova", "bad", "1")
    assert store.list() == []


def test_descriptor_with_outside_reference_or_entities_refused() -> None:
    descriptor = (OVA / "vmware-centos-ovf10.ovf").read_bytes()
    with pytest.raises(IntegrityError, match="outside"):
        parse_ovf(descriptor.replace(b'ovf:href="centos-disk1.vmdk"', b'ovf:href="../../etc/shadow"'))
    with pytest.raises(IntegrityError, match="outside"):
        parse_ovf(descriptor.replace(b'ovf:href="centos-disk1.vmdk"', b'ovf:href="file:///etc/shadow"'))
    with pytest.raises(IntegrityError, match="DOCTYPE"):
        parse_ovf(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + descriptor.split(b"?>", 1)[1])


def test_written_ova_has_spec_order_manifest_and_reads_back(tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "state.raw", 32 << 20)
    vmdk = convert(raw, tmp_path / "disk1.vmdk", "vmdk", "streamOptimized")
    disks = [ExportDisk("demo-disk1.vmdk", vmdk.stat().st_size, 32 << 20)]
    descriptor = build_descriptor("demo", disks, cpus=2, memory_mib=768, annotation="vmlog state abc")
    ova = write_ova(tmp_path / "demo.ova", descriptor, "demo.ovf", [("demo-disk1.vmdk", vmdk)])
    with tarfile.open(ova) as tar:
        assert tar.getnames() == ["demo.ovf", "demo.mf", "demo-disk1.vmdk"]
        assert all(m.isfile() and m.type == tarfile.REGTYPE for m in tar.getmembers())
    work = tmp_path / "w"
    work.mkdir()
    back = unpack_ova(ova, work)
    assert (back.descriptor.cpus, back.descriptor.memory_mib) == (2, 768)
    assert back.manifest == "SHA256 manifest: 2 files match"
    root = ET.fromstring(descriptor)
    assert root.tag == "{http://schemas.dmtf.org/ovf/envelope/1}Envelope"


def test_capacity_units_and_sha512_manifest(tmp_path: Path) -> None:
    """ovftool writes capacities with allocation units (``byte * 2^30``) and newer ones SHA512 manifests."""
    descriptor = (OVA / "vmware-centos-ovf10.ovf").read_bytes().replace(
        b'ovf:capacityAllocationUnits="byte" ovf:fileRef="file1" ovf:diskId="vmdisk1" ovf:capacity="5368709120"',
        b'ovf:capacityAllocationUnits="byte * 2^20" ovf:fileRef="file1" ovf:diskId="vmdisk1" ovf:capacity="16"',
    )
    assert parse_ovf(descriptor).disks[0].capacity == 16 << 20
    raw = raw_disk(tmp_path / "r.raw", 16 << 20)
    vmdk = convert(raw, tmp_path / "c.vmdk", "vmdk", "streamOptimized").read_bytes()
    manifest = (f"SHA512(centos.ovf)= {hashlib.sha512(descriptor).hexdigest()}\n"
                f"SHA512(centos-disk1.vmdk)= {hashlib.sha512(vmdk).hexdigest()}\n").encode()  # fmt: skip
    ova = tmp_path / "centos.ova"
    pack(ova, [("centos.ovf", descriptor), ("centos.mf", manifest), ("centos-disk1.vmdk", vmdk)], compress=False)
    work = tmp_path / "w"
    work.mkdir()
    assert unpack_ova(ova, work).manifest == "SHA512 manifest: 2 files match"
