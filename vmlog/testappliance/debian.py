"""Build ``vmlog-debian``: a real Debian 12 guest (systemd, cloud-init, qemu-guest-agent, sshd) from Debian packages.

What real appliances are made of, so the VM tests see what users' guests do: cloud-init reads the
NoCloud seed, the QEMU guest agent answers on ``org.qemu.guest_agent.0``, sshd serves the seeded
user. ``mmdebstrap`` installs the packages into a directory; the image is an MBR disk like the tiny
appliance's (syslinux on FAT with the kernel and initramfs, then an ext4 root made with
``mkfs.ext4 -d``), so it boots from its own disk on any BIOS hypervisor. Trimmed for TCG: only the
cloud-init modules vmlog's seeds use, datasources NoCloud and None, no network wait, no timers, a
volatile journal (nothing written to the disk that a state would capture), a small initramfs.
Cached like the tiny appliance: rebuilt only when the recipe changes. See docs/test-appliance.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmlog.errors import VmlogError
from vmlog.testappliance import debian_files, disk
from vmlog.testappliance.build import _work_dir, _write_atomic
from vmlog.testappliance.packages import ToolMissing, tool_path

APPLIANCE_NAME = "vmlog-debian"
APPLIANCE_VERSION = "12.1"
IMAGE_NAME = f"{APPLIANCE_NAME}.raw"
MIN_MEMORY_MIB = 512
RECIPE_VERSION = 1  # bump when a build step changes in a way the recipe below does not show
SUITE = "bookworm"
ROOT_LABEL = "vmlog-root"
LAYOUT = disk.DiskLayout(total_mib=2048, boot_mib=48)
PACKAGES = (
    "systemd-sysv", "udev", "linux-image-cloud-amd64", "initramfs-tools", "cloud-init", "qemu-guest-agent",
    "openssh-server", "sudo", "ca-certificates", "fuse3", "iproute2", "netbase",
    "dbus",  # systemd-logind needs it, and without logind the ACPI power button does nothing
)  # fmt: skip
KERNEL_CMDLINE = (
    f"root=LABEL={ROOT_LABEL} rw console=ttyS0,115200 quiet loglevel=3 systemd.show_status=false"
    " net.ifnames=0 panic=10"
)
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "fstrim.timer", "e2scrub_all.timer",
    "e2scrub_reap.service", "systemd-networkd-wait-online.service", "getty@tty1.service", "systemd-pstore.service",
    "cloud-init-hotplugd.socket", "man-db.timer", "systemd-timesyncd.service", "getty-static.service",
    "systemd-binfmt.service", "modprobe@dm_mod.service", "modprobe@drm.service", "modprobe@efi_pstore.service",
)  # fmt: skip
ENABLED_UNITS = ("systemd-networkd.service", "ssh.service")
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
HOST_TOOLS = {"mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs", "syslinux": "syslinux", "sfdisk": "fdisk",
              "mkfs.vfat": "dosfstools", "mcopy": "mtools", "dd": "coreutils"}  # fmt: skip

Progress = Callable[[str], None]


def _guest_files() -> dict[str, bytes]:
    """Relative path in the root -> content (see :mod:`debian_files`)."""
    return {rel: text.encode() for rel, text in sorted(debian_files.FILES.items())}


def recipe() -> dict[str, Any]:
    """Everything the image depends on; an equal recipe means the cached image is still right.

    The package mirror is the machine's apt configuration (a dated snapshot on our test machines),
    so versions are recorded in the image's info after the build rather than predicted here.
    """
    files = {rel: hashlib.sha256(data).hexdigest() for rel, data in _guest_files().items()}
    return {
        "recipe": RECIPE_VERSION, "suite": SUITE, "packages": list(PACKAGES), "cmdline": KERNEL_CMDLINE,
        "masked": list(MASKED_UNITS), "enabled": list(ENABLED_UNITS), "excludes": list(DPKG_EXCLUDES),
        "layout": [LAYOUT.total_mib, LAYOUT.boot_mib], "files": files,
    }  # fmt: skip


def recipe_digest() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()


def check_host() -> None:
    """Raise ``ToolMissing`` naming the apt packages to install, or ``VmlogError`` without root."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = {tool: pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool, path=search) is None}
    if missing:
        raise ToolMissing(
            f"building {APPLIANCE_NAME} needs {', '.join(sorted(missing))}",
            fix=f"apt-get install {' '.join(sorted(set(missing.values())))}",
        )
    if os.geteuid() != 0:
        raise VmlogError(
            f"building {APPLIANCE_NAME} needs root (mmdebstrap installs packages as root, mkfs.ext4 -d keeps owners)",
            fix="build it once as root (`sudo python -m vmlog.testappliance.debian CACHE_DIR`), then reuse the cache",
        )


def _mmdebstrap(root: Path, overlay: Path, debs: Path, say: Progress) -> None:
    """Install the packages into ``root``; downloaded .debs are kept in ``debs`` for the next build."""
    debs.mkdir(parents=True, exist_ok=True)
    hooks = [
        "--setup-hook", 'mkdir -p "$1"/var/cache/apt/archives',
        "--setup-hook", f"sync-in {debs} /var/cache/apt/archives",
        "--customize-hook", f"sync-out /var/cache/apt/archives {debs}",
        "--customize-hook", f"sync-in {overlay} /",
        "--customize-hook", 'chroot "$1" systemctl mask ' + " ".join(MASKED_UNITS),
        "--customize-hook", 'chroot "$1" systemctl enable ' + " ".join(ENABLED_UNITS),
        "--customize-hook", 'chroot "$1" update-initramfs -u -k all',
        "--customize-hook", 'rm -f "$1"/etc/ssh/ssh_host_* "$1"/var/cache/apt/archives/*.deb',
        "--customize-hook", 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/log/*.log "$1"/etc/machine-id',
        "--customize-hook", 'touch "$1"/etc/machine-id',  # empty: systemd makes one per instance at boot
    ]  # fmt: skip
    excludes = [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
    args = [tool_path("mmdebstrap"), "--mode=root", "--variant=apt", "--include=" + ",".join(PACKAGES),
            *excludes, "--dpkgopt=path-include=/usr/share/doc/*/copyright", *hooks, SUITE, str(root)]  # fmt: skip
    say(f"installing {len(PACKAGES)} packages with mmdebstrap into {root}")
    done = subprocess.run(args, capture_output=True, text=True, check=False, env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise VmlogError(f"mmdebstrap failed building {APPLIANCE_NAME}:\n{tail}", fix="check the apt sources")


def _boot_files(root: Path, work: Path) -> dict[str, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise VmlogError(f"the {APPLIANCE_NAME} root has no kernel or initramfs in /boot")
    cfg = work / "syslinux.cfg"
    cfg.write_text(
        "DEFAULT debian\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\n"
        f"LABEL debian\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {KERNEL_CMDLINE}\n"
    )
    return {"vmlinuz": kernels[-1], "initrd.img": initrds[-1], "syslinux.cfg": cfg}


def _package_versions(root: Path) -> dict[str, str]:
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    versions: dict[str, str] = {}
    for block in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") and "installed" in fields.get("Status", ""):
            versions[fields["Package"]] = fields.get("Version", "")
    return versions


def build_debian_appliance(cache_dir: Path, *, force: bool = False, progress: Progress | None = None) -> Path:
    """Build (or reuse) ``vmlog-debian.raw`` in ``cache_dir`` and return its path."""
    say = progress or (lambda _message: None)
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    image = cache_dir / IMAGE_NAME
    info_path = image.with_suffix(".json")
    digest = recipe_digest()
    if not force and image.is_file() and info_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(info_path.read_text()).get("inputs_digest") == digest:
                say(f"{APPLIANCE_NAME} is up to date: {image}")
                return image
    check_host()
    started = time.monotonic()
    with _work_dir(cache_dir) as work:
        overlay = work / "overlay"
        for rel, data in _guest_files().items():
            (overlay / rel).parent.mkdir(parents=True, exist_ok=True)
            (overlay / rel).write_bytes(data)
        root = work / "root"
        _mmdebstrap(root, overlay, cache_dir / "debian-debs", say)
        versions = _package_versions(root)
        say("making the boot and root filesystems")
        boot_fs, root_fs = work / "boot.vfat", work / "root.ext4"
        disk.make_boot_filesystem(boot_fs, LAYOUT.boot_mib, _boot_files(root, work), volume_id=digest[:8])
        disk.make_data_filesystem(root_fs, LAYOUT.data_mib, root, str(uuid.UUID(digest[:32])), label=ROOT_LABEL)
        shutil.rmtree(root)
        say("assembling the disk image")
        tmp_image = work / image.name
        disk.assemble(tmp_image, LAYOUT, boot_fs, root_fs, disk_id=digest[32:40])
        info = {
            "name": APPLIANCE_NAME, "version": APPLIANCE_VERSION, "size": tmp_image.stat().st_size,
            "sha256": _sha256_file(tmp_image), "inputs_digest": digest, "inputs": recipe(),
            "packages": {name: versions.get(name, "") for name in sorted(versions)},
            "build_seconds": round(time.monotonic() - started, 1), "min_memory_mib": MIN_MEMORY_MIB,
        }  # fmt: skip
        tmp_image.replace(image)
        _write_atomic(info_path, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    say(f"built {image} in {info['build_seconds']} s")
    return image


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def debian_metadata(image: Path) -> dict[str, Any]:
    """What the build recorded next to the image (version, sha256, package versions, build time)."""
    return json.loads(Path(image).with_suffix(".json").read_text())


if __name__ == "__main__":  # pragma: no cover - the build as a command: python -m vmlog.testappliance.debian DIR
    import sys

    print(build_debian_appliance(Path(sys.argv[1] if len(sys.argv) > 1 else "."), progress=print))
