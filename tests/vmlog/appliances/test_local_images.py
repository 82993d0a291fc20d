"""Local image files: the format comes from the bytes (through the image gate), never from the name."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from boxmaker import VAGRANT, convert, pack, raw_disk

from hypervisors import qemu_img
from vmlog.appliances.pull import import_local_image
from vmlog.errors import InvalidInput
from vmlog.store import ImageStore


def test_ubuntu_style_img_that_is_qcow2(tmp_path: Path) -> None:
    """Ubuntu cloud images are named ``*.img`` and are qcow2: stored as qcow2, not as a raw disk."""
    raw = raw_disk(tmp_path / "r.raw")
    img = convert(raw, tmp_path / "jammy-server-cloudimg-amd64.img", "qcow2")
    store = ImageStore(tmp_path / "images")
    (image,) = import_local_image(store, img).images
    assert image.format == "qcow2" and image.name == "jammy-server-cloudimg-amd64"
    assert qemu_img.compare(raw, "raw", image.path, "qcow2")


@pytest.mark.parametrize(("suffix", "fmt", "subformat"), [(".qcow2", "raw", None), (".disk", "vmdk", "streamOptimized"),
                                                          (".vdi", "vdi", None)])  # fmt: skip
def test_suffix_never_decides(tmp_path: Path, suffix: str, fmt: str, subformat: str | None) -> None:
    raw = raw_disk(tmp_path / "r.raw")
    path = tmp_path / f"image{suffix}"
    if fmt == "raw":
        path.write_bytes(raw.read_bytes())
    else:
        convert(raw, path, fmt, subformat)
    (image,) = import_local_image(ImageStore(tmp_path / "images"), path).images
    assert image.format == fmt


def test_qcow2_with_backing_file_refused(tmp_path: Path) -> None:
    base = convert(raw_disk(tmp_path / "r.raw"), tmp_path / "base.qcow2", "qcow2")
    evil = qemu_img.create_overlay(tmp_path / "evil.img", base, "qcow2")
    store = ImageStore(tmp_path / "images")
    with pytest.raises(InvalidInput, match="backing"):
        import_local_image(store, evil)
    assert store.list() == []


def test_compressed_image_refused_with_how_to(tmp_path: Path) -> None:
    path = tmp_path / "disk.img.gz"
    path.write_bytes(gzip.compress(b"\0" * 4096))
    with pytest.raises(InvalidInput, match="gunzip"):
        import_local_image(ImageStore(tmp_path / "images"), path)


def test_local_box_and_split_vmdk(tmp_path: Path) -> None:
    raw = raw_disk(tmp_path / "r.raw", 16 << 20)
    box = tmp_path / "local.box"
    pack(box, [("./metadata.json", VAGRANT / "libvirt-v1" / "metadata.json"),
               ("./box.img", convert(raw, tmp_path / "box.img", "qcow2"))], dot_dir=True)  # fmt: skip
    store = ImageStore(tmp_path / "images")
    (image,) = import_local_image(store, box).images
    assert image.format == "qcow2" and image.name == "local"
    split = tmp_path / "vm"
    split.mkdir()
    convert(raw, split / "My Disk.vmdk", "vmdk", "twoGbMaxExtentSparse")
    stored = import_local_image(store, split / "My Disk.vmdk", name="vm")
    assert stored.images[0].format == "qcow2" and qemu_img.compare(raw, "raw", stored.images[0].path, "qcow2")
