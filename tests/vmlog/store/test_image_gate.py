"""Tests of the image gate: formats from magic bytes, and every way an image could reach another file refused."""

from __future__ import annotations

import gzip
import struct
import subprocess
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.store import ImageStore
from vmlog.store.image_gate import GatedImage, HostileImage, check_image, detect_format

MIB = 1 << 20


def make(tmp_path: Path, name: str, fmt: str, *options: str, size: str = "1M") -> Path:
    path = tmp_path / name
    args = ["qemu-img", "create", "-q", "-f", fmt]
    if options:
        args += ["-o", ",".join(options)]
    subprocess.run([*args, str(path), size], check=True, cwd=tmp_path)
    return path


def patch(path: Path, offset: int, data: bytes) -> Path:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)
    return path


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary"
    path.write_bytes(b"host secret\n" * 1000)
    return path


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("qcow2", ()), ("vmdk", ()), ("vmdk", ("subformat=streamOptimized",)), ("vdi", ()), ("vhdx", ()),
     ("vpc", ()), ("raw", ())],
)
def test_standalone_images_pass_with_their_virtual_size(tmp_path: Path, fmt: str, options: tuple[str, ...]) -> None:
    image = make(tmp_path, f"disk.{fmt}", fmt, *options)
    assert detect_format(image) == fmt
    gated = check_image(image, fmt)
    assert isinstance(gated, GatedImage) and gated.format == fmt and gated.virtual_size >= MIB


def test_archive_kinds_are_detected(tmp_path: Path) -> None:
    raw = tmp_path / "x.raw"
    raw.write_bytes(b"\1" * 4096)
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw.read_bytes()))
    subprocess.run(["tar", "-cf", "x.tar", "x.raw"], cwd=tmp_path, check=True)
    (tmp_path / "a.ovf").write_text("<Envelope/>")
    subprocess.run(["tar", "-cf", "x.ova", "a.ovf", "x.raw"], cwd=tmp_path, check=True)
    (tmp_path / "x.xz").write_bytes(b"\xfd7zXZ\x00" + b"\0" * 100)
    (tmp_path / "x.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)
    (tmp_path / "x.bz2").write_bytes(b"BZh9" + b"\0" * 100)
    kinds = {name: detect_format(tmp_path / name) for name in ("x.gz", "x.tar", "x.ova", "x.xz", "x.zst", "x.bz2")}
    assert kinds == {"x.gz": "gzip", "x.tar": "tar", "x.ova": "ova", "x.xz": "xz", "x.zst": "zstd", "x.bz2": "bzip2"}
    with pytest.raises(HostileImage, match="gzip archive") as refused:
        check_image(tmp_path / "x.gz", "qcow2")
    assert refused.value.reason == "archive" and refused.value.exit_code == 18


def test_a_qcow2_backing_file_on_a_host_path_is_refused_before_qemu_img_opens_it(tmp_path: Path, canary: Path) -> None:
    image = make(tmp_path, "top.qcow2", "qcow2", f"backing_file={canary}", "backing_fmt=raw")
    canary.chmod(0)  # were it opened, qemu-img would fail with EACCES (or read it, as root)
    with pytest.raises(HostileImage, match="backing file") as refused:
        check_image(image, "qcow2")
    assert refused.value.reason == "backing-file"


def test_a_qcow2_external_data_file_is_refused(tmp_path: Path) -> None:
    image = make(tmp_path, "d.qcow2", "qcow2", f"data_file={tmp_path / 'data.raw'}")
    with pytest.raises(HostileImage, match="data file") as refused:
        check_image(image, "qcow2")
    assert refused.value.reason == "data-file"


def test_vmdk_descriptors_naming_other_files_are_refused(tmp_path: Path, canary: Path) -> None:
    flat = make(tmp_path, "flat.vmdk", "vmdk", "subformat=monolithicFlat")
    assert detect_format(flat) == "vmdk-descriptor"
    with pytest.raises(HostileImage, match="descriptor naming other files"):
        check_image(flat, "vmdk")
    host = tmp_path / "host.vmdk"
    host.write_text(f'# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 8 FLAT "{canary}" 0\n')
    with pytest.raises(HostileImage, match="extents"):
        check_image(host, "vmdk")


def test_a_sparse_vmdk_with_capacity_0_or_a_parent_is_refused(tmp_path: Path) -> None:
    zero = patch(make(tmp_path, "z.vmdk", "vmdk"), 12, struct.pack("<Q", 0))
    with pytest.raises(HostileImage, match="capacity 0"):
        check_image(zero, "vmdk")
    child = make(tmp_path, "c.vmdk", "vmdk")
    text = child.read_bytes()
    at = text.index(b"parentCID=ffffffff")
    patch(child, at, b"parentCID=12345678")
    with pytest.raises(HostileImage, match="parent") as refused:
        check_image(child, "vmdk")
    assert refused.value.reason == "backing-file"


def test_a_format_other_than_the_header_is_refused(tmp_path: Path) -> None:
    image = make(tmp_path, "disk.qcow2", "qcow2")
    with pytest.raises(HostileImage, match="declared raw but its header says qcow2"):
        check_image(image, "raw")
    with pytest.raises(HostileImage, match="declared vmdk"):
        check_image(image, "vmdk")


def test_absurd_virtual_sizes_are_refused(tmp_path: Path) -> None:
    image = patch(make(tmp_path, "big.qcow2", "qcow2"), 24, struct.pack(">Q", 1 << 60))
    with pytest.raises(HostileImage, match="virtual size") as refused:
        check_image(image, "qcow2")
    assert refused.value.reason == "virtual-size"
    with pytest.raises(HostileImage, match="virtual size"):
        check_image(make(tmp_path, "ok.qcow2", "qcow2", size="64M"), "qcow2", max_virtual_size=MIB)


def test_differencing_vdi_and_vhd_are_refused(tmp_path: Path) -> None:
    vdi = patch(make(tmp_path, "d.vdi", "vdi"), 0x4C, struct.pack("<I", 4))
    with pytest.raises(HostileImage, match="differencing"):
        check_image(vdi, "vdi")
    vpc = make(tmp_path, "d.vpc", "vpc")
    patch(vpc, 60, struct.pack(">I", 4))
    with pytest.raises(HostileImage, match="differencing"):
        check_image(vpc, "vpc")


def test_the_store_refuses_a_hostile_image_and_keeps_nothing(tmp_path: Path, canary: Path) -> None:
    store = ImageStore(tmp_path / "images")
    image = make(tmp_path, "top.qcow2", "qcow2", f"backing_file={canary}", "backing_fmt=raw")
    with pytest.raises(HostileImage):
        store.add_file(image, name="evil", version="1", format="qcow2")
    download = tmp_path / "download.part"
    download.write_bytes(image.read_bytes())
    with pytest.raises(HostileImage):
        store.adopt(download, sha256="0" * 64, name="evil", version="1", format="qcow2")
    assert store.list() == [] and not download.exists()
    assert not [p for p in store.root.iterdir() if not p.name.startswith(".")]
    assert not any((store.root / ".staging").iterdir())


def test_conversions_read_through_image_opts_and_are_checked_again(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    stored = store.add_file(make(tmp_path, "disk.qcow2", "qcow2"), name="demo", version="1", format="qcow2")
    for fmt in ("vmdk", "vdi", "raw"):
        converted = store.converted(stored.sha256, fmt)
        assert check_image(converted, fmt).virtual_size == MIB
    assert qemu_img.image_opts(Path("/a,b"), "qcow2") == "driver=qcow2,file.driver=file,file.filename=/a,,b,backing="
