"""Debian packages for the test appliance: resolve, download (``apt-get download``) and unpack them.

Nothing is installed on the host and nothing is read from the host's ``/boot``: the kernel and
busybox come from their ``.deb`` files, cached in one directory so rebuilding works offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmlog.errors import DownloadError, NotFound, VmlogError

# tool -> the Debian package that provides it
HOST_TOOLS = {
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "apt-cache": "apt",
    "sfdisk": "fdisk",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "mkfs.ext4": "e2fsprogs",
    "dd": "coreutils",
}


class ToolMissing(VmlogError):
    """A host program the appliance build needs is not installed."""

    exit_code = 83


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    path: Path


def check_host_tools() -> None:
    """Fail early, naming the apt packages to install, if a build tool is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = {tool: pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool, path=search) is None}
    if missing:
        tools = ", ".join(sorted(missing))
        packages = " ".join(sorted(set(missing.values())))
        raise ToolMissing(
            f"building the test appliance needs {tools}, which is not installed",
            fix=f"apt-get install {packages}",
        )


def tool_path(tool: str) -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(tool, path=search)
    if found is None:
        raise ToolMissing(f"{tool} is not installed", fix=f"apt-get install {HOST_TOOLS.get(tool, tool)}")
    return found


def _run(args: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool_path(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "LC_ALL": "C"},
    )


def candidate_version(package: str) -> str | None:
    """The version ``apt-get download`` would fetch, or None if apt does not know the package."""
    proc = _run(["apt-cache", "show", "--no-all-versions", package])
    if proc.returncode != 0:
        return None
    for line in proc.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return None


def kernel_package(flavour: str = "cloud-amd64", debs_dir: Path | None = None) -> str:
    """The versioned kernel package the ``linux-image-<flavour>`` metapackage points at.

    Falls back to the newest matching ``.deb`` already in the cache when apt cannot tell (offline).
    """
    meta = f"linux-image-{flavour}"
    proc = _run(["apt-cache", "depends", meta])
    if proc.returncode == 0:
        for line in proc.stdout.splitlines():
            kind, _, target = line.strip().partition(":")
            target = target.strip()
            if kind.strip() in ("Depends", "|Depends") and target.startswith("linux-image-"):
                return target
    if debs_dir is not None:
        cached = sorted(debs_dir.glob(f"linux-image-*-{flavour}_*.deb"))
        if cached:
            return cached[-1].name.split("_", 1)[0]
    raise NotFound(
        f"apt does not know {meta}, the metapackage of the appliance's kernel",
        fix="apt-get update (the Debian main archive must be in /etc/apt/sources.list)",
    )


def _deb_version(path: Path) -> str:
    proc = _run(["dpkg-deb", "--field", str(path), "Version"])
    if proc.returncode != 0:
        raise VmlogError(f"{path} is not a readable .deb: {proc.stderr.strip()}", fix=f"rm {path}")
    return proc.stdout.strip()


def _cached(package: str, debs_dir: Path) -> list[DebPackage]:
    found = [DebPackage(package, _deb_version(p), p) for p in sorted(debs_dir.glob(f"{package}_*.deb"))]
    return [deb for deb in found if not deb.path.name.endswith(".partial")]


def fetch(package: str, debs_dir: Path) -> DebPackage:
    """The package's candidate ``.deb`` in ``debs_dir``, downloaded with ``apt-get download`` if needed.

    When apt cannot resolve or download it (offline), a previously cached version is used.
    """
    debs_dir.mkdir(parents=True, exist_ok=True)
    want = candidate_version(package)
    cached = _cached(package, debs_dir)
    for deb in cached:
        if deb.version == want:
            return deb
    if want is not None:
        proc = _run(["apt-get", "download", "-q", package], cwd=debs_dir)
        for deb in _cached(package, debs_dir):
            if deb.version == want:
                return deb
        detail = proc.stderr.strip() or proc.stdout.strip()
    else:
        detail = "apt-cache does not know it"
    if cached:
        return cached[-1]
    raise DownloadError(
        f"cannot download the Debian package {package}: {detail}",
        fix="check network access to the Debian archive and run apt-get update",
    )


def unpack(deb: DebPackage, dest: Path) -> Path:
    """Unpack the package's files (not its scripts) under ``dest`` with ``dpkg-deb -x``."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = _run(["dpkg-deb", "-x", str(deb.path), str(dest)])
    if proc.returncode != 0:
        raise VmlogError(f"dpkg-deb could not unpack {deb.path.name}: {proc.stderr.strip()}", fix=f"rm {deb.path}")
    return dest
