"""Fast tests of the appliance's building blocks: NoCloud seed ISOs, module order, initramfs cpio."""

from __future__ import annotations

import io
import stat
import subprocess
from pathlib import Path

import pycdlib
import pytest

from vmlog.context.nocloud import build_nocloud_seed
from vmlog.errors import InvalidInput, NotFound
from vmlog.testappliance import modules
from vmlog.testappliance.cpio import CpioArchive

MODULES_DEP = """\
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko \
kernel/drivers/cdrom/cdrom.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
"""


def _read_iso_file(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def test_seed_has_cidata_label_and_lowercase_names(tmp_path: Path) -> None:
    seed = build_nocloud_seed(
        tmp_path / "seed.iso",
        meta_data="instance-id: i-1\nlocal-hostname: alice\n",
        user_data="#cloud-config\nhostname: alice\n",
        network_config="version: 2\n",
    )
    assert seed == tmp_path / "seed.iso"
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]  # no temp file left behind
    iso = pycdlib.PyCdlib()
    iso.open(str(seed))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_rock_ridge() and iso.has_joliet()
        assert _read_iso_file(iso, rr_path="/meta-data") == b"instance-id: i-1\nlocal-hostname: alice\n"
        assert _read_iso_file(iso, joliet_path="/user-data") == b"#cloud-config\nhostname: alice\n"
        assert _read_iso_file(iso, rr_path="/network-config") == b"version: 2\n"
        names = sorted(
            child.rock_ridge.name().decode()
            for child in iso.list_children(rr_path="/")
            if child.rock_ridge is not None and not child.is_dot() and not child.is_dotdot()
        )
        assert names == ["meta-data", "network-config", "user-data"]
    finally:
        iso.close()


def test_seed_is_readable_by_the_system_iso_tools(tmp_path: Path) -> None:
    isoinfo = subprocess.run(["which", "isoinfo"], capture_output=True, text=True).stdout.strip()
    if not isoinfo:
        pytest.skip("isoinfo (genisoimage) is not installed")
    seed = build_nocloud_seed(tmp_path / "seed.iso", meta_data="instance-id: x\n", user_data="#!/bin/sh\n")
    listing = subprocess.run([isoinfo, "-R", "-l", "-i", str(seed)], capture_output=True, text=True).stdout
    assert " meta-data" in listing and " user-data" in listing and "network-config" not in listing


def test_seed_rejects_non_text(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        build_nocloud_seed(tmp_path / "seed.iso", meta_data=b"x", user_data="")  # type: ignore[arg-type]
    assert not (tmp_path / "seed.iso").exists()


def test_load_order_puts_dependencies_first() -> None:
    deps = modules.parse_modules_dep(MODULES_DEP)
    order = [modules.module_name(p) for p in modules.load_order(deps, ["virtio_pci", "virtio_blk", "sr_mod"])]
    assert sorted(order) == sorted(
        ["virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
         "virtio_blk", "scsi_common", "scsi_mod", "cdrom", "sr_mod"]
    )  # fmt: skip
    for path, needed in deps.items():
        if path in modules.load_order(deps, ["virtio_pci", "virtio_blk", "sr_mod"]):
            for dep in needed:
                assert order.index(modules.module_name(dep)) < order.index(modules.module_name(path))
    assert order.count("virtio") == 1


def test_load_order_handles_dashes_builtins_and_optional_modules() -> None:
    deps = modules.parse_modules_dep(MODULES_DEP)
    order = modules.load_order(deps, ["virtio-rng", "ext4"], ["no_such_module"], builtin={"ext4"})
    assert [modules.module_name(p) for p in order][-1] == "virtio_rng"
    with pytest.raises(NotFound, match="ahci"):
        modules.load_order(deps, ["ahci"])


def test_load_order_detects_cycles() -> None:
    deps = modules.parse_modules_dep("a.ko: b.ko\nb.ko: a.ko\n")
    with pytest.raises(InvalidInput, match="cycle"):
        modules.load_order(deps, ["a"])


def test_modinfo_depends_reads_the_elf_section() -> None:
    candidates = sorted(Path("/lib/modules").glob("*/kernel/drivers/block/virtio_blk.ko*"))
    if not candidates:
        pytest.skip("no installed kernel with virtio_blk as a module")
    _, data = modules.read_module(candidates[-1])
    assert set(modules.modinfo_depends(data)) >= {"virtio", "virtio_ring"}


def test_cpio_archive_is_newc_that_cpio_can_list(tmp_path: Path) -> None:
    archive = CpioArchive()
    archive.add_dir("etc")
    archive.add_file("etc/hostname", b"vmlog-test\n")
    archive.add_symlink("bin/sh", "busybox")
    archive.add_char_device("dev/console", 5, 1)
    data = archive.to_bytes()
    assert data.startswith(b"070701") and len(data) % 4 == 0
    listing = subprocess.run(
        ["cpio", "-t", "-v", "--quiet"], input=data, capture_output=True, check=True
    ).stdout.decode()
    assert "etc/hostname" in listing and "bin/sh -> busybox" in listing
    console = next(line for line in listing.splitlines() if line.endswith("dev/console"))
    assert console.startswith("c") and "5," in console
    assert stat.S_ISCHR(archive.entries[-1].mode)
