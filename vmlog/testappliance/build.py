"""Build the vmlog test appliance: a ~100 MiB raw MBR disk image made only of Debian packages.

The image boots on its own (syslinux on a FAT partition, Debian's cloud kernel, a busybox initramfs)
so it works on any hypervisor, and carries an ext4 data partition the guest mounts at ``/data``.
Builds are cached: the image is rebuilt only when its inputs (package versions, guest scripts,
build recipe) change. See docs/test-appliance.md.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from vmlog.errors import NotFound, VmlogError
from vmlog.testappliance import disk, modules, packages
from vmlog.testappliance.cpio import CpioArchive

APPLIANCE_NAME = "vmlog-test"
APPLIANCE_VERSION = "1.0"
IMAGE_NAME = f"{APPLIANCE_NAME}.raw"
MIN_MEMORY_MIB = 256
RECIPE_VERSION = 1  # bump when the build steps change in a way the inputs below do not show
DEFAULT_HOSTNAME = "vmlog-test"
KERNEL_CMDLINE = "console=tty0 console=ttyS0,115200 quiet panic=10"
LAYOUT = disk.DiskLayout()

# guest file -> (path in the initramfs, mode)
GUEST_FILES = {
    "init": ("init", 0o755),
    "inittab": ("etc/inittab", 0o644),
    "rcS": ("etc/vmlog/rcS", 0o755),
    "shutdown": ("etc/vmlog/shutdown", 0o755),
    "udhcpc.script": ("etc/vmlog/udhcpc.script", 0o755),
    "power-button": ("etc/acpi/PWRF/00000080", 0o755),
    "vmlog-seed": ("sbin/vmlog-seed", 0o755),
    "vmlog-agent": ("sbin/vmlog-agent", 0o755),
}

Progress = Callable[[str], None]


def _guest_file(name: str) -> bytes:
    return resources.files("vmlog.testappliance").joinpath("guest", name).read_bytes()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inputs(kernel: packages.DebPackage, busybox: packages.DebPackage, flavour: str) -> dict[str, Any]:
    """Everything the image's content depends on; equal inputs mean the cached image is still right."""
    return {
        "recipe": RECIPE_VERSION,
        "version": APPLIANCE_VERSION,
        "kernel_flavour": flavour,
        "debs": {deb.name: deb.version for deb in (kernel, busybox)},
        "guest": {name: hashlib.sha256(_guest_file(name)).hexdigest() for name in sorted(GUEST_FILES)},
        "modules": [list(modules.REQUIRED_MODULES), list(modules.OPTIONAL_MODULES)],
        "mbr": _sha256_file(disk.mbr_bin()),
        "cmdline": KERNEL_CMDLINE,
        "layout": [LAYOUT.total_mib, LAYOUT.boot_mib],
    }


def _digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _info_path(image: Path) -> Path:
    return image.with_suffix(".json")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def build_test_appliance(
    cache_dir: Path, *, force: bool = False, progress: Progress | None = None, kernel_flavour: str = "cloud-amd64"
) -> Path:
    """Build (or reuse) the test appliance image in ``cache_dir`` and return its path.

    ``kernel_flavour`` picks the ``linux-image-<flavour>`` kernel: ``cloud-amd64`` (small, virtio and
    IDE only) or ``amd64`` (also AHCI/SATA, as VirtualBox and VMware attach disks and CD-ROMs).
    """
    say = progress or (lambda _message: None)
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    packages.check_host_tools()
    debs_dir = cache_dir / "debs"
    kernel_pkg = packages.kernel_package(kernel_flavour, debs_dir)
    say(f"fetching {kernel_pkg} and busybox-static")
    kernel = packages.fetch(kernel_pkg, debs_dir)
    busybox = packages.fetch("busybox-static", debs_dir)
    inputs = _inputs(kernel, busybox, kernel_flavour)
    digest = _digest(inputs)
    suffix = "" if kernel_flavour == "cloud-amd64" else f"-{kernel_flavour}"
    image = cache_dir / f"{APPLIANCE_NAME}{suffix}.raw"
    info_path = _info_path(image)
    if not force and image.is_file() and info_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(info_path.read_text()).get("inputs_digest") == digest:
                say(f"test appliance is up to date: {image}")
                return image

    with _work_dir(cache_dir) as work:
        say(f"unpacking {kernel.path.name}")
        kernel_root = packages.unpack(kernel, work / "kernel")
        busybox_root = packages.unpack(busybox, work / "busybox")
        vmlinuz, modules_dir = _kernel_files(kernel_root)
        say("writing the initramfs")
        initrd = work / "initrd.gz"
        kernel_release = modules_dir.name
        initrd.write_bytes(gzip.compress(_initramfs(busybox_root, modules_dir), compresslevel=9, mtime=0))
        cfg = work / "syslinux.cfg"
        cfg.write_text(_syslinux_cfg())
        say("making the boot and data filesystems")
        boot_fs = work / "boot.vfat"
        disk.make_boot_filesystem(
            boot_fs,
            LAYOUT.boot_mib,
            {"vmlinuz": vmlinuz, "initrd.gz": initrd, "syslinux.cfg": cfg},
            volume_id=digest[:8],
        )
        data_content = work / "data"
        data_content.mkdir()
        (data_content / "README").write_text(
            f"Data disk of the {APPLIANCE_NAME} appliance {APPLIANCE_VERSION}; the guest mounts it at /data.\n"
        )
        data_fs = work / "data.ext4"
        disk.make_data_filesystem(data_fs, LAYOUT.data_mib, data_content, str(uuid.UUID(digest[:32])))
        say("assembling the disk image")
        tmp_image = work / image.name
        disk.assemble(tmp_image, LAYOUT, boot_fs, data_fs, disk_id=digest[32:40])
        info = {
            "name": APPLIANCE_NAME,
            "version": APPLIANCE_VERSION,
            "kernel": kernel_release,
            "kernel_package": f"{kernel.name} {kernel.version}",
            "busybox_package": f"{busybox.name} {busybox.version}",
            "size": tmp_image.stat().st_size,
            "sha256": _sha256_file(tmp_image),
            "inputs_digest": digest,
            "inputs": inputs,
        }
        with tmp_image.open("rb+") as f:
            os.fsync(f.fileno())
        tmp_image.replace(image)
        _write_atomic(info_path, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    say(f"built {image}")
    return image


def appliance_metadata(image: Path) -> dict[str, Any]:
    """The appliance's catalog entry: name, version, arch, format, size, sha256, minimum memory."""
    image = Path(image)
    if not image.is_file():
        raise NotFound(f"test appliance image {image} does not exist", fix="build it with build_test_appliance()")
    info: dict[str, Any] = {}
    with contextlib.suppress(ValueError, OSError):
        info = json.loads(_info_path(image).read_text())
    size = image.stat().st_size
    sha256 = info.get("sha256") if info.get("size") == size else None
    return {
        "name": info.get("name", APPLIANCE_NAME),
        "version": info.get("version", APPLIANCE_VERSION),
        "arch": "x86_64",
        "format": "raw",
        "size": size,
        "sha256": sha256 or _sha256_file(image),
        "min_memory_mib": MIN_MEMORY_MIB,
        "kernel": info.get("kernel"),
    }


@contextlib.contextmanager
def _work_dir(cache_dir: Path) -> Iterator[Path]:
    """A scratch directory in the cache (same filesystem, so the final rename is atomic), always removed."""
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kernel_files(root: Path) -> tuple[Path, Path]:
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    module_dirs = sorted(
        [p for base in ("lib/modules", "usr/lib/modules") for p in (root / base).glob("*") if p.is_dir()]
    )
    if not vmlinuz or not module_dirs:
        raise VmlogError("the kernel package has no /boot/vmlinuz-* or no /lib/modules/<release>")
    return vmlinuz[-1], module_dirs[-1]


def _initramfs(busybox_root: Path, modules_dir: Path) -> bytes:
    """The initramfs as a newc cpio archive: busybox, the guest scripts and the kernel modules."""
    busybox = busybox_root / "bin" / "busybox"
    if not busybox.is_file():
        raise VmlogError("the busybox-static package has no /bin/busybox")
    wanted = modules.REQUIRED_MODULES + modules.OPTIONAL_MODULES
    deps = modules.dependency_map(modules_dir, wanted)
    builtin_file = modules_dir / "modules.builtin"
    builtin = modules.parse_modules_builtin(builtin_file.read_text()) if builtin_file.is_file() else set()
    order = modules.load_order(deps, modules.REQUIRED_MODULES, modules.OPTIONAL_MODULES, builtin)

    archive = CpioArchive()
    for directory in (
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/vmlog", "etc/acpi", "etc/acpi/PWRF",
        "lib", "lib/modules", "dev", "proc", "sys", "run", "data", "scratch", "root",
    ):  # fmt: skip
        archive.add_dir(directory)
    archive.add_dir("tmp", 0o1777)
    archive.add_char_device("dev/console", 5, 1)
    archive.add_char_device("dev/null", 1, 3, 0o666)
    archive.add_file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.add_symlink("bin/sh", "busybox")
    for name, (target, mode) in GUEST_FILES.items():
        archive.add_file(target, _guest_file(name), mode)
    archive.add_file("etc/vmlog/version", f"{APPLIANCE_VERSION}\n".encode())
    archive.add_file("etc/hostname", f"{DEFAULT_HOSTNAME}\n".encode())
    archive.add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    archive.add_file("etc/group", b"root:x:0:\n")
    archive.add_file("etc/shadow", b"root::1::::::\n", 0o600)
    load_list = []
    for path in order:
        name, data = modules.read_module(modules_dir / path)
        archive.add_file(f"lib/modules/{name}", data)
        load_list.append(name)
    archive.add_file("etc/vmlog/modules", ("\n".join(load_list) + "\n").encode())
    return archive.to_bytes()


def _syslinux_cfg() -> str:
    return (
        "SERIAL 0 115200\n"
        "PROMPT 0\n"
        "DEFAULT vmlog\n"
        "LABEL vmlog\n"
        "  LINUX /vmlinuz\n"
        "  INITRD /initrd.gz\n"
        f"  APPEND {KERNEL_CMDLINE}\n"
    )
