"""Assemble the appliance's MBR disk image without loop devices or mounts.

Partition 1 is a bootable FAT filesystem with syslinux, the kernel and the initramfs; partition 2
is an ext4 filesystem labelled ``vmlog-data``. Each filesystem is made in its own file
(``mkfs.vfat`` + ``syslinux --install`` + ``mcopy``; ``mkfs.ext4 -d``) and copied into place with
``dd conv=notrunc,sparse`` behind syslinux's ``mbr.bin``, so the image stays sparse.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmlog.errors import NotFound, VmlogError
from vmlog.testappliance.packages import tool_path

MIB = 1024 * 1024
SECTOR = 512
MBR_BIN_CANDIDATES = (Path("/usr/lib/syslinux/mbr/mbr.bin"), Path("/usr/lib/SYSLINUX/mbr.bin"))
DATA_LABEL = "vmlog-data"


@dataclass(frozen=True)
class DiskLayout:
    """Sizes in MiB; partition 1 starts at 1 MiB, partition 2 right after it and fills the disk."""

    total_mib: int = 100
    boot_mib: int = 40

    @property
    def data_mib(self) -> int:
        return self.total_mib - 1 - self.boot_mib


def mbr_bin() -> Path:
    for path in MBR_BIN_CANDIDATES:
        if path.is_file():
            return path
    raise NotFound("syslinux's mbr.bin is missing", fix="apt-get install syslinux-common")


def _run(args: list[str]) -> None:
    proc = subprocess.run(
        [tool_path(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C", "MTOOLS_SKIP_CHECK": "1"},
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
        raise VmlogError(f"{args[0]} failed while building the test appliance: {detail}")


def make_boot_filesystem(path: Path, size_mib: int, files: dict[str, Path], volume_id: str) -> None:
    """A FAT filesystem with syslinux installed and ``files`` (name in the root -> host file) copied in."""
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
    _run(["mkfs.vfat", "-n", "VMLOGBOOT", "-i", volume_id, str(path)])
    _run(["syslinux", "--install", str(path)])
    for name, source in files.items():
        _run(["mcopy", "-o", "-i", str(path), str(source), f"::/{name}"])


def make_data_filesystem(path: Path, size_mib: int, content: Path, uuid: str, *, label: str = DATA_LABEL) -> None:
    """An ext4 filesystem labelled ``label`` holding ``content``, fully initialised up front.

    Lazy inode-table and journal initialisation are off so the guest does not rewrite the disk after
    its first boot (every such write would land in the first state's overlay).
    """
    path.unlink(missing_ok=True)
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            label,
            "-U",
            uuid,
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
            "-d",
            str(content),
            str(path),
            f"{size_mib}M",
        ]
    )


def assemble(image: Path, layout: DiskLayout, boot_fs: Path, data_fs: Path, disk_id: str) -> None:
    """Write the MBR (syslinux boot code + partition table) and both filesystems into ``image``."""
    image.unlink(missing_ok=True)
    with image.open("wb") as f:
        f.truncate(layout.total_mib * MIB)
    boot_start = MIB // SECTOR
    boot_size = layout.boot_mib * MIB // SECTOR
    data_start = boot_start + boot_size
    script = (
        "label: dos\n"
        f"label-id: 0x{disk_id}\n"
        "unit: sectors\n"
        f"start={boot_start}, size={boot_size}, type=c, bootable\n"
        f"start={data_start}, type=83\n"
    )
    proc = subprocess.run(
        [tool_path("sfdisk"), "--no-reread", "--no-tell-kernel", "-q", str(image)],
        input=script,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    if proc.returncode != 0:
        raise VmlogError(f"sfdisk could not partition the test appliance image: {proc.stderr.strip()}")
    # Only the 440 bytes of boot code: the partition table and signature that follow belong to sfdisk.
    _run(["dd", f"if={mbr_bin()}", f"of={image}", "bs=440", "count=1", "conv=notrunc", "status=none"])
    _run(["dd", f"if={boot_fs}", f"of={image}", "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"])
    seek = 1 + layout.boot_mib
    _run(["dd", f"if={data_fs}", f"of={image}", "bs=1M", f"seek={seek}", "conv=notrunc,sparse", "status=none"])
