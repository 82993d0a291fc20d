"""Kernel modules for the initramfs: which ones, and the order to load them in.

busybox ``insmod`` does not resolve dependencies, so the order comes from ``modules.dep`` (every
module after everything it depends on). A kernel ``.deb`` does not ship ``modules.dep`` (its
postinst runs depmod), so when it is absent the same map is read from each module's ELF
``.modinfo`` section (``depends=``), which is what depmod itself reads.
"""

from __future__ import annotations

import gzip
import lzma
import struct
from pathlib import Path

import zstandard

from vmlog.errors import InvalidInput, NotFound

# Needed for the appliance to work at all on QEMU/libvirt: its disks, the seed CD-ROM, the power button.
REQUIRED_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "ata_piix",
    "sr_mod",
    "cdrom",
    "isofs",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "button",
    "evdev",
)
# Loaded when the kernel has them: other hypervisors' controllers, shared folders, niceties.
OPTIONAL_MODULES = (
    "virtio_console",
    "virtio_scsi",
    "virtio_rng",
    "virtio_balloon",
    "sd_mod",
    "ahci",
    "nvme",
    "vmw_pvscsi",
    "e1000",
    "e1000e",
    "virtiofs",
    "fuse",
)

_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")


def module_name(path: str) -> str:
    """``kernel/drivers/block/virtio_blk.ko.xz`` -> ``virtio_blk`` (dashes count as underscores)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """Parse ``modules.dep``: module path -> the paths it depends on (relative to the modules dir)."""
    deps: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path, sep, rest = line.partition(":")
        if not sep:
            raise InvalidInput(f"modules.dep line {number} has no ':': {line!r}")
        deps[path.strip()] = rest.split()
    return deps


def load_order(
    deps: dict[str, list[str]],
    required: tuple[str, ...] | list[str],
    optional: tuple[str, ...] | list[str] = (),
    builtin: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Paths of the wanted modules and all their dependencies, each after what it depends on.

    A required module that is neither a module nor built into the kernel is an error; a missing
    optional one is skipped.
    """
    by_name = {module_name(path): path for path in deps}
    order: list[str] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(path: str) -> None:
        if path in placed:
            return
        if path in visiting:
            raise InvalidInput(f"modules.dep has a dependency cycle through {path}")
        visiting.add(path)
        for dep in deps.get(path, []):
            place(dep)
        visiting.discard(path)
        placed.add(path)
        order.append(path)

    for name in required:
        name = name.replace("-", "_")
        if name in by_name:
            place(by_name[name])
        elif name not in builtin:
            raise NotFound(
                f"kernel module {name} is neither in modules.dep nor built into the kernel",
                fix="use a kernel flavour that provides it (linux-image-cloud-amd64 or linux-image-amd64)",
            )
    for name in optional:
        name = name.replace("-", "_")
        if name in by_name:
            place(by_name[name])
    return order


def parse_modules_builtin(text: str) -> set[str]:
    """Names of the modules built into the kernel (``modules.builtin``)."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def modinfo_depends(module: bytes) -> list[str]:
    """Names of the modules a module depends on, from the ``depends=`` entry of its ELF ``.modinfo``."""
    if module[:4] != b"\x7fELF" or module[4] != 2:
        raise InvalidInput("not a 64-bit ELF kernel module")
    endian = "<" if module[5] == 1 else ">"
    (shoff,) = struct.unpack_from(endian + "Q", module, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", module, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        (name,) = struct.unpack_from(endian + "I", module, base)
        offset, size = struct.unpack_from(endian + "QQ", module, base + 0x18)
        return name, offset, size

    _, strtab, _ = section(shstrndx)
    for index in range(shnum):
        name_offset, offset, size = section(index)
        end = module.index(b"\0", strtab + name_offset)
        if module[strtab + name_offset : end] == b".modinfo":
            for entry in module[offset : offset + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    value = entry[len(b"depends=") :].decode()
                    return [name.replace("-", "_") for name in value.split(",") if name]
            return []
    return []


def dependency_map(modules_dir: Path, wanted: tuple[str, ...] | list[str] = ()) -> dict[str, list[str]]:
    """``modules.dep`` of an unpacked kernel, or the equivalent map built from the modules themselves.

    Without ``modules.dep`` only ``wanted`` modules and what they need are read (reading all of them
    would cost seconds for nothing).
    """
    dep_file = modules_dir / "modules.dep"
    if dep_file.is_file():
        return parse_modules_dep(dep_file.read_text())
    paths = {
        module_name(p.name): p.relative_to(modules_dir).as_posix()
        for p in modules_dir.rglob("*.ko*")
        if any(p.name.endswith(suffix) for suffix in _SUFFIXES)
    }
    deps: dict[str, list[str]] = {path: [] for path in paths.values()}
    pending = [name.replace("-", "_") for name in wanted if name.replace("-", "_") in paths]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        _, data = read_module(modules_dir / paths[name])
        needed = [dep for dep in modinfo_depends(data) if dep in paths]
        deps[paths[name]] = [paths[dep] for dep in needed]
        pending.extend(needed)
    return deps


def read_module(path: Path) -> tuple[str, bytes]:
    """The module's file name as busybox insmod wants it (plain ``.ko``) and its uncompressed bytes."""
    data = path.read_bytes()
    name = path.name
    if name.endswith(".ko.xz"):
        data = lzma.decompress(data)
    elif name.endswith(".ko.zst"):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    elif name.endswith(".ko.gz"):
        data = gzip.decompress(data)
    return module_name(name) + ".ko", data
