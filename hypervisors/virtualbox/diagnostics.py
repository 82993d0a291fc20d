"""VirtualBox's error output mapped onto vmlog's errors, each with the fix for the user.

VBoxManage prints ``VBoxManage: error: <text>`` lines, then a ``Details: code <RESULT> (...)`` line
naming the Main API result code; runtime failures carry IPRT status names (``VERR_...``). The same
codes reach vboxapi callers in exception texts, so one mapping serves both.
"""

from __future__ import annotations

import re

from hypervisors.errors import (
    BackendUnavailable,
    HypervisorError,
    InvalidState,
    OperationFailed,
    VMExists,
    VMNotFound,
)

BACKEND = "virtualbox"
VBOXDRV_FIX = (
    "load VirtualBox's kernel module: run `sudo /sbin/vboxconfig` (install your kernel's headers first, "
    "and enrol the module's key if Secure Boot is on)"
)
VTX_FIX = (
    "another hypervisor holds VT-x/AMD-V: stop KVM guests and unload KVM (`sudo modprobe -r kvm_intel kvm_amd`),"
    " or use vmlog's kvm backend instead; on Windows turn Hyper-V off (`bcdedit /set hypervisorlaunchtype off`)"
)
VERSION_FIX = "install VirtualBox 6.1 or newer from https://www.virtualbox.org/wiki/Downloads"

_ERROR_LINE = re.compile(r"^VBoxManage(?:\.exe)?: error: (.*)$")
_DETAILS = re.compile(r"^Details: code (\S+)")


def error_lines(stderr: str) -> tuple[list[str], str | None]:
    """The message lines and the result-code name of a VBoxManage error output."""
    lines: list[str] = []
    code = None
    for raw in stderr.splitlines():
        match = _ERROR_LINE.match(raw.strip())
        if not match:
            continue
        text = match.group(1)
        details = _DETAILS.match(text)
        if details:
            code = details.group(1)
        elif not text.startswith("Context:"):
            lines.append(text)
    return lines, code


# The Linux wrapper script (src/VBox/Installer/linux/VBox.sh) prints these warnings on **stdout** before
# running VBoxManage; VBoxManage itself reports the driver's IPRT status on stderr.
VBOXDRV_MARKERS = (
    "vboxdrv kernel module is not loaded", "The character device /dev/vboxdrv does not exist",
    "compilation of the vboxdrv.ko kernel module failed", "VERR_VM_DRIVER_NOT_INSTALLED",
    "VERR_VM_DRIVER_NOT_ACCESSIBLE", "VERR_VM_DRIVER_LOAD_ERROR",
)


def vboxdrv_missing(text: str) -> bool:
    """True if VBoxManage's output (give stdout and stderr) says the kernel driver is unusable."""
    return any(marker in text for marker in VBOXDRV_MARKERS)


def map_error(command: str, stderr: str, exit_code: int) -> HypervisorError:
    """Turn a failed VirtualBox call into the most specific vmlog error."""
    lines, code = error_lines(stderr)
    message = " ".join(lines) or stderr.strip() or f"exit code {exit_code}"
    what = f"VirtualBox could not {command}: {message}"
    if vboxdrv_missing(stderr):
        return BackendUnavailable(
            f"VirtualBox cannot run VMs: its kernel module vboxdrv is not loaded ({command} failed)",
            fix=VBOXDRV_FIX, backend=BACKEND)
    if any(m in stderr for m in ("VERR_VMX_IN_VMX_ROOT_MODE", "VERR_SVM_IN_USE", "VERR_VMX_NO_VMX",
                                 "VERR_NEM_NOT_AVAILABLE", "VERR_NEM_VM_CREATE_FAILED")):
        return OperationFailed(f"VirtualBox cannot use hardware virtualisation: {message}", fix=VTX_FIX,
                               backend=BACKEND)
    if code == "VBOX_E_OBJECT_NOT_FOUND" and "registered machine" in message:
        return VMNotFound(what, fix="list VMs with `VBoxManage list vms`", backend=BACKEND)
    if "already exists" in message and command.startswith("create"):
        return VMExists(what, fix="choose another name or delete the existing VM", backend=BACKEND)
    if code in ("VBOX_E_INVALID_VM_STATE", "VBOX_E_INVALID_OBJECT_STATE") or "is not currently running" in message:
        return InvalidState(what, backend=BACKEND)
    if exit_code == 2 and ("Unknown option" in message or "Invalid" in message or "Unknown subcommand" in message):
        return OperationFailed(f"this VirtualBox does not understand `{command}`: {message}", fix=VERSION_FIX,
                               backend=BACKEND)
    return OperationFailed(what, backend=BACKEND)
