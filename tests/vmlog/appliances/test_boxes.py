"""Vagrant boxes laid out as vagrant-libvirt's create_box.sh, `vagrant package` (v2) and Packer make them,
pulled by the names Vagrant users type, from catalogs with several versions and architectures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from boxmaker import (
    VAGRANT,
    convert,
    pack,
    provider,
    raw_disk,
    vagrant_metadata,
    write_json,
)

from hypervisors import qemu_img
from vmlog.appliances.box import unpack_box
from vmlog.appliances.catalog import Catalogs, parse_catalog
from vmlog.appliances.model import gem_compare, sort_key, store_ref
from vmlog.appliances.ovf_disks import parse_descriptor
from vmlog.appliances.pull import choose_image, pull, stored_versions
from vmlog.errors import InvalidInput
from vmlog.store import ImageStore
from vmlog.store.image_gate import HostileImage


def _serve_catalog(http_server, tmp_path: Path, name: str, versions: dict[str, list[dict]]) -> Catalogs:
    catalogs = Catalogs(tmp_path / "config")
    catalogs.add(str(write_json(tmp_path / "metadata.json", vagrant_metadata(name, versions))))
    return catalogs


def test_create_box_sh_layout_pulled_by_org_name(http_server, tmp_path: Path) -> None:
    """tools/create_box.sh: `tar cvzf BOX ./metadata.json ./Vagrantfile ./box.img` with its metadata.json."""
    raw = raw_disk(tmp_path / "disk.raw")
    qcow = convert(raw, tmp_path / "box.img", "qcow2")
    box = pack(tmp_path / "l.box", [
        ("./metadata.json", VAGRANT / "libvirt-v1" / "metadata.json"),
        ("./Vagrantfile", VAGRANT / "libvirt-v1" / "Vagrantfile"),
        ("./box.img", qcow),
    ])  # fmt: skip
    url = http_server.add("/generic/debian12.box", box)
    catalogs = _serve_catalog(http_server, tmp_path, "generic/debian12", {"4.3.12": [provider("libvirt", url, box)]})
    appliance = catalogs.get("generic/debian12")  # as `vagrant box add generic/debian12` is typed
    assert catalogs.get("generic-debian12") == appliance  # the store's name works too
    store = ImageStore(tmp_path / "images")
    pulled = pull(appliance, store, downloads=tmp_path / "dl")
    assert pulled.image.name == "generic-debian12" and pulled.image.format == "qcow2"
    assert qemu_img.compare(raw, "raw", pulled.disk, "qcow2")
    assert [i.format for i in store.list()] == ["qcow2"]  # the box itself is not kept
    assert "vagrant-libvirt v1" in pulled.obtained


def test_vagrant_package_v2_two_disks_tar_c_dot(http_server, tmp_path: Path) -> None:
    """`vagrant package` with VAGRANT_LIBVIRT_BOX_FORMAT_VERSION=v2, packed with `tar czf x.box -C dir .`:
    the ``./`` entry first, members in directory order, metadata.json after the disks."""
    system, data = raw_disk(tmp_path / "a.raw"), raw_disk(tmp_path / "b.raw", 4 << 20)
    box = pack(tmp_path / "v2.box", [
        ("./Vagrantfile", VAGRANT / "libvirt-v2" / "Vagrantfile"),
        ("./box_1.img", convert(system, tmp_path / "box_1.img", "qcow2")),
        ("./box_2.img", convert(data, tmp_path / "box_2.img", "qcow2")),
        ("./metadata.json", VAGRANT / "libvirt-v2" / "metadata.json"),
    ], dot_dir=True)  # fmt: skip
    url = http_server.add("/v2.box", box)
    catalogs = _serve_catalog(http_server, tmp_path, "org/v2", {"1.0": [provider("libvirt", url, box)]})
    store = ImageStore(tmp_path / "images")
    pulled = pull(catalogs.get("org/v2"), store, downloads=tmp_path / "dl")
    assert pull(catalogs.get("org/v2"), store, downloads=tmp_path / "dl").extra_disks == pulled.extra_disks
    (second,) = pulled.extra_disks
    assert qemu_img.compare(system, "raw", pulled.disk, "qcow2") and qemu_img.compare(data, "raw", second.path, "qcow2")
    assert (pulled.image.name, second.name) == ("org-v2", "org-v2-disk2") and "v2 (disks array)" in pulled.obtained


def test_packer_virtualbox_box_used_on_kvm(http_server, tmp_path: Path) -> None:
    """Packer's virtualbox box: metadata.json, Vagrantfile, box.ovf (a real VirtualBox export) and the
    streamOptimized VMDK it names; a kvm setup takes it when the catalog offers nothing else."""
    raw = raw_disk(tmp_path / "disk.raw")
    vmdk = convert(raw, tmp_path / "d.vmdk", "vmdk", "streamOptimized")
    box = pack(tmp_path / "vb.box", [
        ("Vagrantfile", VAGRANT / "virtualbox" / "Vagrantfile"),
        ("box-disk001.vmdk", vmdk),
        ("box.ovf", VAGRANT / "virtualbox" / "box.ovf"),
        ("metadata.json", VAGRANT / "virtualbox" / "metadata.json"),
    ])  # fmt: skip
    url = http_server.add("/vb.box", box)
    catalogs = _serve_catalog(http_server, tmp_path, "org/vbonly", {"1.0.0": [provider("virtualbox", url, box)]})
    version = catalogs.get("org/vbonly").resolve()
    assert choose_image(version, disk_format="qcow2").box_provider == "virtualbox"
    pulled = pull(catalogs.get("org/vbonly"), ImageStore(tmp_path / "images"), disk_format="qcow2",
                  downloads=tmp_path / "dl")  # fmt: skip
    assert pulled.image.format == "vmdk" and pulled.disk_format == "qcow2"
    assert qemu_img.compare(raw, "raw", pulled.disk, "qcow2")


def test_real_split_descriptor_is_read() -> None:
    descriptor = parse_descriptor((VAGRANT / "vmware_desktop" / "OpenSUSE 64-bit.vmdk").read_bytes())
    assert descriptor.create_type == "twoGbMaxExtentSparse" and len(descriptor.extents) == 11
    assert descriptor.extents[0].file_name == "OpenSUSE 64-bit-s001.vmdk"
    assert descriptor.virtual_size == (10 * 4192256 + 20480) * 512 and descriptor.adapter_type == "lsilogic"


def test_packer_vmware_split_vmdk_box_joined(http_server, tmp_path: Path) -> None:
    """Packer's VMware builder writes twoGbMaxExtentSparse; the box carries the descriptor and extents."""
    raw = raw_disk(tmp_path / "disk.raw", 24 << 20)
    split = tmp_path / "split"
    split.mkdir()
    convert(raw, split / "disk.vmdk", "vmdk", "twoGbMaxExtentSparse")
    members = [("metadata.json", VAGRANT / "vmware_desktop" / "metadata.json")]
    members += [(p.name, p) for p in sorted(split.iterdir())]
    box = pack(tmp_path / "vm.box", members)
    url = http_server.add("/vm.box", box)
    catalogs = _serve_catalog(http_server, tmp_path, "org/vmw", {"1": [provider("vmware_desktop", url, box)]})
    pulled = pull(catalogs.get("org/vmw"), ImageStore(tmp_path / "images"), disk_format="vmdk",
                  downloads=tmp_path / "dl")  # fmt: skip
    assert pulled.image.format == "qcow2" and qemu_img.compare(raw, "raw", pulled.image.path, "qcow2")
    assert pulled.disk_format == "vmdk" and qemu_img.compare(raw, "raw", pulled.disk, "vmdk")
    assert "VMDK extents joined" in pulled.obtained


@pytest.mark.parametrize("extent", ["/etc/passwd", "../../etc/passwd", "missing-s001.vmdk"])
def test_split_vmdk_naming_files_outside_the_box_refused(tmp_path: Path, http_server, extent: str) -> None:
    descriptor = (
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="twoGbMaxExtentSparse"\n'
        f'RW 2048 SPARSE "{extent}"\n'
    ).encode()
    box = pack(tmp_path / "evil.box", [("metadata.json", b'{"provider":"vmware_desktop"}'), ("disk.vmdk", descriptor)])
    url = http_server.add("/evil.box", box)
    catalogs = _serve_catalog(http_server, tmp_path, "evil/box", {"1.0": [provider("vmware_desktop", url, box)]})
    store = ImageStore(tmp_path / "images")
    with pytest.raises(HostileImage, match="extents must be files of the package"):
        pull(catalogs.get("evil/box"), store, disk_format="vmdk", downloads=tmp_path / "dl")
    assert store.list() == []  # neither the box nor a disk stays behind


def test_failed_unbox_leaves_nothing(http_server, tmp_path: Path) -> None:
    truncated_qcow2 = b"QFI\xfb" + bytes(508)
    box = pack(tmp_path / "bad.box", [("metadata.json", b'{"provider":"libvirt"}'), ("box.img", truncated_qcow2)])
    url = http_server.add("/bad.box", box)
    catalogs = _serve_catalog(http_server, tmp_path, "bad/box", {"1.0": [provider("libvirt", url, box)]})
    store = ImageStore(tmp_path / "images")
    with pytest.raises(InvalidInput):  # the gate refuses the truncated qcow2 (HostileImage)
        pull(catalogs.get("bad/box"), store, downloads=tmp_path / "dl")
    assert store.list() == []


def test_sparse_members_stay_sparse(tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "big.raw", 64 << 20)
    box = tmp_path / "sparse.box"
    pack(box, [("metadata.json", b'{"provider":"libvirt","format":"raw"}'), ("box.img", raw)])
    work = tmp_path / "work"
    work.mkdir()
    unpacked = unpack_box(box, "libvirt", work)
    disk = unpacked.disks[0]
    assert disk.format == "raw" and disk.path.stat().st_size == 64 << 20
    assert disk.path.stat().st_blocks * 512 < 4 << 20  # 3 marked blocks, not 64 MiB written
    assert disk.path.read_bytes() == raw.read_bytes()


def test_multi_architecture_catalog_picks_the_host(tmp_path: Path, monkeypatch) -> None:
    """Vagrant's own test metadata ("with architecture"): a host of amd64 never gets an arm64 box."""
    doc = json.loads((VAGRANT / "catalog" / "vagrant-box-metadata-test-architecture.json").read_text())
    for version in doc["versions"]:
        for entry in version["providers"]:
            entry["url"] = f"https://boxes.example/{version['version']}/{entry['name']}-{entry['architecture']}.box"
    monkeypatch.setenv("VMLOG_HOST_ARCH", "x86_64")
    (amd,) = parse_catalog(doc, source="t")
    assert amd.resolve().version == "1.1.5"  # 2.0.0 and 1.1.6 offer arm64 only, as Vagrant's test expects
    first = amd.resolve("1.0.0").images
    assert first["box/virtualbox"].arch == "x86_64" and first["box/virtualbox@aarch64"].arch == "aarch64"
    assert not first["box/virtualbox@aarch64"].for_host
    monkeypatch.setenv("VMLOG_HOST_ARCH", "aarch64")
    (arm,) = parse_catalog(doc, source="t")
    assert arm.resolve().version == "1.1.6" and arm.resolve().images["box/virtualbox"].arch == "aarch64"


def test_legacy_default_architecture_box_and_unverifiable_checksum(tmp_path: Path) -> None:
    """Vagrant Cloud's answer for bento/centos-5.11: architecture "unknown" marked default, checksum "none"."""
    doc = json.loads((VAGRANT / "catalog" / "bento-centos-5.11.json").read_text())
    (appliance,) = parse_catalog(doc, source="vagrantcloud")
    assert appliance.name == "bento/centos-5.11"
    source = appliance.resolve().images["box/virtualbox"]
    assert source.arch == "unknown" and source.for_host  # taken on any host, labelled as what it says
    with pytest.raises(InvalidInput, match="sha256"):
        pull(appliance, ImageStore(tmp_path / "images"), disk_format="vdi", downloads=tmp_path / "dl")


def test_versions_ordered_as_vagrant_and_identical_disks_both_recorded(http_server, tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "disk.raw")
    qcow = convert(raw, tmp_path / "box.img", "qcow2")
    boxes = {}
    for version in ("1.0.0.beta1", "1.0.0", "0.9"):  # identical disk, boxes differing in their Vagrantfile
        boxes[version] = pack(tmp_path / f"{version}.box", [
            ("metadata.json", VAGRANT / "libvirt-v1" / "metadata-arch-boxes.json"),
            ("Vagrantfile", f"# {version}\n".encode()), ("box.img", qcow),
        ])  # fmt: skip
    versions = {v: [provider("libvirt", http_server.add(f"/{v}.box", b), b)] for v, b in boxes.items()}
    catalogs = _serve_catalog(http_server, tmp_path, "org/same", versions)
    appliance = catalogs.get("org/same")
    assert appliance.resolve().version == "1.0.0" and appliance.summary()["versions"] == ["0.9", "1.0.0.beta1", "1.0.0"]
    assert appliance.resolve("1.0").version == "1.0.0"  # as Vagrant's version constraint "= 1.0" matches
    store = ImageStore(tmp_path / "images")
    first = pull(appliance, store, version="1.0.0.beta1", downloads=tmp_path / "dl")
    second = pull(appliance, store, version="1.0.0", downloads=tmp_path / "dl")
    assert first.image.sha256 == second.image.sha256 and second.version.version == "1.0.0"
    assert {("org-same", "1.0.0.beta1"), ("org-same", "1.0.0")} <= stored_versions(store)


def test_vagrant_server_resolves_names_no_catalog_lists(http_server, tmp_path: Path, monkeypatch) -> None:
    raw = raw_disk(tmp_path / "disk.raw")
    box = pack(tmp_path / "b.box", [("metadata.json", VAGRANT / "libvirt-v1" / "metadata.json"),
                                    ("box.img", convert(raw, tmp_path / "box.img", "qcow2"))])  # fmt: skip
    url = http_server.add("/b.box", box)
    doc = vagrant_metadata("hashicorp/bionic64", {"1.0.282": [provider("libvirt", url, box)]})
    http_server.add("/hashicorp/bionic64", json.dumps(doc).encode())
    monkeypatch.setenv("VAGRANT_SERVER_URL", http_server.url(""))
    catalogs = Catalogs(tmp_path / "config")
    pulled = pull(catalogs.get("hashicorp/bionic64"), ImageStore(tmp_path / "images"), downloads=tmp_path / "dl")
    assert pulled.version.version == "1.0.282" and qemu_img.compare(raw, "raw", pulled.disk, "qcow2")
    with pytest.raises(Exception, match="does not offer"):
        catalogs.get("nobody/nothing")


def test_box_ovf_from_virtualbox_lists_disk_not_iso() -> None:
    from vmlog.appliances.ovf import parse_ovf

    descriptor = parse_ovf((VAGRANT / "virtualbox" / "box.ovf").read_bytes())
    assert [d.href for d in descriptor.disks] == ["box-disk001.vmdk"]
    assert [d.href for d in descriptor.cdroms] == ["box-disk002.iso"]


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1.0.0.beta1", "1.0.0"), ("1.0.0", "1.0.1"), ("4.9", "4.10"), ("1.0.0-rc1", "1.0.0"), ("1.0.0.a", "1.0.0.b"),
     ("202002.04.0", "202112.19.0"), ("1.0.a1", "1.0.a10")],
)  # fmt: skip
def test_versions_compare_as_rubygems(older: str, newer: str) -> None:
    assert gem_compare(older, newer) == -1 and gem_compare(newer, older) == 1
    assert sorted([newer, older], key=lambda v: sort_key(v, "rubygems")) == [older, newer]


def test_equal_versions_and_store_refs() -> None:
    assert gem_compare("1.0", "1.0.0") == 0 and gem_compare("1", "1.0.0.0") == 0
    assert store_ref("hashicorp/bionic64:1.0.282") == "hashicorp-bionic64:1.0.282"
    assert store_ref("debian-12:local") == "debian-12:local" and store_ref("0123abcd") == "0123abcd"
