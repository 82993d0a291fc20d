"""Is VirtualBox usable here? VBoxManage present, a supported version, vboxdrv loaded, VT-x free, vboxapi."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hypervisors.base import Probe
from hypervisors.virtualbox.diagnostics import BACKEND, VBOXDRV_FIX, VERSION_FIX, vboxdrv_missing
from hypervisors.virtualbox.vboxmanage import MINIMUM_VERSION, VBoxManage, parse_version


def kvm_modules_loaded(modules: Path = Path("/proc/modules")) -> list[str]:
    try:
        names = [line.split()[0] for line in modules.read_text().splitlines() if line.strip()]
    except OSError:
        return []
    return [n for n in names if n in ("kvm_intel", "kvm_amd")]


def vboxapi_importable() -> bool:
    try:
        return importlib.util.find_spec("vboxapi") is not None
    except (ImportError, ValueError):
        return False


def probe_virtualbox(vboxmanage: Path) -> Probe:
    tool = VBoxManage(vboxmanage, timeout=30)
    try:
        code, stdout, stderr = tool.run_raw(["--version"])
    except Exception as exc:  # noqa: BLE001 - a probe never raises
        return Probe(BACKEND, False, f"VBoxManage does not run: {exc}", fix=VERSION_FIX)
    version_text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    version = parse_version(version_text)
    details = {"VBoxManage": str(vboxmanage), "version": version_text or "unknown",
               "api": "vboxapi (Main API)" if vboxapi_importable() else "VBoxManage"}
    if code != 0 or version is None:
        return Probe(BACKEND, False, f"VBoxManage --version failed: {stderr.strip() or stdout.strip()}",
                     fix=VERSION_FIX, details=details)
    if version[:2] < MINIMUM_VERSION:
        return Probe(BACKEND, False, f"VirtualBox {version_text} is too old for vmlog (6.1 or newer needed)",
                     fix=VERSION_FIX, details=details)
    if vboxdrv_missing(stdout + stderr):  # the wrapper script warns on stdout
        return Probe(BACKEND, False, "VirtualBox is installed but its kernel module vboxdrv is not loaded",
                     fix=VBOXDRV_FIX, details=details)
    warnings = []
    kvm = kvm_modules_loaded()
    if kvm and version[:2] < (7, 1):
        warnings.append(
            f"{', '.join(kvm)} is loaded: VirtualBox {version_text} fails with VERR_VMX_IN_VMX_ROOT_MODE while a "
            "KVM guest runs (unload it with `sudo modprobe -r kvm_intel kvm_amd` to use VirtualBox)")
    if not vboxapi_importable():
        warnings.append("vboxapi (VirtualBox SDK) is not importable: vmlog drives VirtualBox through VBoxManage")
    return Probe(BACKEND, True, f"VirtualBox {version_text}", details=details, warnings=warnings)
