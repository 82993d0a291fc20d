"""Choosing the accelerator (KVM or TCG) and finding out whether KVM really works on this host.

``/dev/kvm`` can exist and open while guests still hang (nested hosts whose KVM cannot run
protected-mode guests, for example): there a real guest stalls right after the firmware. So the
test is a guest: a 64 KiB firmware image that switches the CPU from real mode to protected mode
and on to 64-bit long mode with paging, then writes to QEMU's ``isa-debug-exit`` port. QEMU then
exits with code 99 at once; a KVM that cannot run guests never gets there, and a bounded timeout
turns that into "use TCG". The result is cached per process and, keyed by the host's boot id and
the emulator, in a small file for the rest of the boot.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ACCEL_ENV = "VMLOG_ACCEL"
ACCELERATORS = ("auto", "kvm", "tcg")
PROBE_TIMEOUT_ENV = "VMLOG_KVM_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 6.0
CACHE_FORMAT = 1

# The firmware's code, loaded at 0xF0000 (assembled from the listing below; GNU as syntax):
#   .code16  cli; mov $0x402,%dx; mov $'R',%al; out %al,(%dx)      # progress to isa-debugcon
#            xor %ax,%ax; mov %ax,%ds; lgdtl %cs:gdtdesc
#            mov %cr0,%eax; or $1,%eax; mov %eax,%cr0; ljmpl $0x08,$0xF0024
#   .code32  mov $0x10,%ax; mov %ax,%ds/%es/%ss; mov $'P',%al; out %al,(%dx)
#            zero 0x1000-0x3fff; PML4[0]=0x2003, PDPT[0]=0x3003, PD[0]=0x83 (one 2 MiB page)
#            cr4 |= PAE; cr3 = 0x1000; EFER |= LME (wrmsr 0xC0000080); cr0 |= PG; ljmp $0x18,$0xF008E
#   .code64  mov $0x402,%dx; mov $'L',%al; out %al,(%dx); mov $0x31,%al; out %al,$0xf4; 1: hlt; jmp 1b
#   gdt: null, code32 0x00cf9a000000ffff, data 0x00cf92000000ffff, code64 0x00af9a000000ffff
#   gdtdesc: .word 31; .long 0xF00A0
_FIRMWARE_CODE = bytes.fromhex(
    "faba0204b052ee31c08ed82e660f0116c0000f20c06683c8010f22c066ea2400"
    "0f00080066b810008ed88ec08ed0b050eebf0010000031c0b9000c0000f3abc7"
    "050010000003200000c7050020000003300000c70500300000830000000f20e0"
    "83c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d"
    "000000800f22c0ea8e000f00180066ba0204b04ceeb031e6f4f4ebfd8db40000"
    "0000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf00"
    "1f00a0000f00"
)
_RESET_VECTOR_JUMP = bytes.fromhex("ea0000" "00f0")  # at 0xFFFF0: ljmp $0xf000,$0x0
FIRMWARE_SIZE = 65536
EXIT_OK = (0x31 << 1) | 1  # isa-debug-exit turns the value written into this exit status


@dataclass(frozen=True)
class AccelDecision:
    """The accelerator to use, why, and a warning when it is not what the user would expect."""

    accelerator: str  # "kvm", "tcg", or "none" where the libvirt driver runs no QEMU (its test driver)
    reason: str
    warning: str | None = None
    driver_domain_type: str | None = None  # the ``<domain type=...>`` of a driver that is not QEMU's

    @property
    def domain_type(self) -> str:
        """The libvirt ``<domain type=...>`` for this accelerator."""
        if self.driver_domain_type:
            return self.driver_domain_type
        return "kvm" if self.accelerator == "kvm" else "qemu"

    def to_dict(self) -> dict[str, str | None]:
        return {"accelerator": self.accelerator, "reason": self.reason, "warning": self.warning}


@dataclass(frozen=True)
class KvmTest:
    works: bool
    reason: str


def requested_accelerator(value: str | None) -> str:
    """The accelerator asked for (argument, else ``$VMLOG_ACCEL``, else ``auto``), validated."""
    choice = (value or os.environ.get(ACCEL_ENV) or "auto").strip().lower()
    if choice not in ACCELERATORS:
        raise ValueError(f"unknown accelerator {choice!r}; choose one of {', '.join(ACCELERATORS)}")
    return choice


def firmware_image() -> bytes:
    """The 64 KiB test firmware (see the module docstring)."""
    image = bytearray(b"\xf4" * FIRMWARE_SIZE)  # hlt everywhere else
    image[: len(_FIRMWARE_CODE)] = _FIRMWARE_CODE
    image[0xFFF0 : 0xFFF0 + len(_RESET_VECTOR_JUMP)] = _RESET_VECTOR_JUMP
    return bytes(image)


def _probe_timeout() -> float:
    try:
        return float(os.environ.get(PROBE_TIMEOUT_ENV, DEFAULT_PROBE_TIMEOUT))
    except ValueError:
        return DEFAULT_PROBE_TIMEOUT


def run_guest_test(emulator: str, accel: str, timeout: float | None = None) -> KvmTest:
    """Boot the test firmware with ``accel``; never waits longer than ``timeout`` seconds."""
    timeout = _probe_timeout() if timeout is None else timeout
    with tempfile.TemporaryDirectory(prefix="vmlog-accel-") as tmp:
        firmware = Path(tmp) / "probe.bin"
        firmware.write_bytes(firmware_image())
        cmd = [
            emulator, "-machine", f"pc,accel={accel}", "-nodefaults", "-no-user-config",
            "-display", "none", "-m", "16", "-bios", str(firmware),
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False, start_new_session=True
            )
        except subprocess.TimeoutExpired:
            return KvmTest(False, f"a test guest did not reach 64-bit mode within {timeout:g} s under {accel}")
        except OSError as exc:
            return KvmTest(False, f"cannot run {emulator}: {exc}")
    if proc.returncode == EXIT_OK:
        return KvmTest(True, f"a test guest reached 64-bit mode under {accel}")
    lines = [line for line in proc.stderr.splitlines() if "warning:" not in line]
    detail = lines[-1].strip() if lines else f"exit status {proc.returncode}"
    return KvmTest(False, f"the test guest failed under {accel}: {detail}")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _cache_file() -> Path:
    return Path(tempfile.gettempdir()) / f"vmlog-kvm-test-{os.getuid()}.json"


def _cache_key(emulator: str) -> str:
    try:
        stamp = os.stat(emulator).st_mtime_ns
    except OSError:
        stamp = 0
    return f"{CACHE_FORMAT}:{_boot_id()}:{os.uname().release}:{emulator}:{stamp}"


def _read_cache(key: str) -> KvmTest | None:
    path = _cache_file()
    try:
        if path.stat().st_uid != os.getuid():  # never trust a file someone else put in /tmp
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return None
    return KvmTest(bool(entry.get("works")), str(entry.get("reason", "")))


def _write_cache(key: str, result: KvmTest) -> None:
    path = _cache_file()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
        with os.fdopen(fd, "w") as fh:
            json.dump({key: {"works": result.works, "reason": result.reason}}, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache we cannot write only costs one more test next time


_process_cache: dict[str, KvmTest] = {}


def check_kvm(emulator: str, *, use_cache: bool = True) -> KvmTest:
    """Whether KVM runs a real guest here (cached per process and per host boot)."""
    key = _cache_key(emulator)
    if use_cache:
        if key in _process_cache:
            return _process_cache[key]
        cached = _read_cache(key)
        if cached is not None:
            _process_cache[key] = cached
            return cached
    result = run_guest_test(emulator, "kvm")
    _process_cache[key] = result
    _write_cache(key, result)
    return result


def _kvm_device_problem(device: Path = Path("/dev/kvm")) -> str | None:
    if not device.exists():
        return f"{device} does not exist (no KVM in this kernel, or virtualisation is off in the firmware)"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"no permission to use {device} (join the kvm group: `adduser $USER kvm`)"
    return None


def system_daemon_device_problem(device: Path = Path("/dev/kvm")) -> str | None:
    """Why the system daemon would re-probe QEMU on every call, or None.

    udev's rule makes ``/dev/kvm`` ``root:kvm 0660``. Without udev it stays ``root:root 0600``: the
    daemon's ``libvirt-qemu`` user then cannot use KVM while the cached QEMU capabilities say it can,
    so libvirt probes QEMU again for every define, start and capabilities call (seconds each).
    """
    try:
        info = device.stat()
    except OSError:
        return None  # no KVM at all: nothing to re-probe
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        kvm_gid = None
    if kvm_gid is not None and info.st_gid == kvm_gid and info.st_mode & 0o060 == 0o060:
        return None
    if info.st_mode & 0o006 == 0o006:
        return None  # usable by everyone
    owner = f"{_group_name(info.st_uid, pwd_lookup=True)}:{_group_name(info.st_gid)}"
    return (
        f"{device} is {owner} {stat.S_IMODE(info.st_mode):04o}, not root:kvm 0660 as udev makes it: libvirt"
        " re-probes QEMU on every define, start and capabilities call (seconds each);"
        f" fix: `chgrp kvm {device} && chmod 0660 {device}` as root (bash .ci/setup-host does it)"
    )


def _group_name(ident: int, *, pwd_lookup: bool = False) -> str:
    try:
        return pwd.getpwuid(ident).pw_name if pwd_lookup else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def decide_local(requested: str, emulator: str | None) -> AccelDecision:
    """The accelerator for guests started on this machine."""
    if requested == "tcg":
        return AccelDecision("tcg", "TCG asked for (VMLOG_ACCEL=tcg)")
    problem = _kvm_device_problem()
    if problem is None and emulator is None:
        problem = "no QEMU emulator found to test KVM with"
    result = KvmTest(False, problem) if problem else check_kvm(emulator or "")
    if requested == "kvm":
        if result.works:
            return AccelDecision("kvm", f"KVM asked for and working: {result.reason}")
        return AccelDecision(
            "kvm", "KVM asked for (VMLOG_ACCEL=kvm)",
            warning=f"KVM was asked for but does not work here: {result.reason}; guests may hang"
                    " (use VMLOG_ACCEL=auto or tcg)",
        )  # fmt: skip
    if result.works:
        return AccelDecision("kvm", f"KVM works: {result.reason}")
    if problem:
        return AccelDecision("tcg", f"KVM not available: {problem}",
                             warning=f"guests run under TCG emulation (slow): {problem}")
    return AccelDecision(
        "tcg", f"KVM present but not working: {result.reason}",
        warning=f"KVM is present but not working ({result.reason}); guests run under TCG emulation (slow)",
    )  # fmt: skip


def decide_remote(requested: str, kvm_offered: bool) -> AccelDecision:
    """The accelerator on a remote host, where only libvirt's capabilities can be asked."""
    if requested == "tcg":
        return AccelDecision("tcg", "TCG asked for (VMLOG_ACCEL=tcg)")
    if kvm_offered:
        warning = None if requested == "kvm" else "KVM on the remote host is offered by libvirt but not tested"
        return AccelDecision("kvm", "the remote libvirt offers KVM", warning=warning)
    if requested == "kvm":
        return AccelDecision("kvm", "KVM asked for", warning="the remote libvirt does not offer KVM")
    return AccelDecision("tcg", "the remote libvirt does not offer KVM",
                         warning="guests run under TCG emulation (slow) on the remote host")


def decide_other_driver(driver: str, domain_type: str) -> AccelDecision:
    """A libvirt driver other than QEMU's (the ``test`` driver): no accelerator to choose, no KVM test to run."""
    return AccelDecision("none", f"the libvirt {driver} driver runs no QEMU guests", driver_domain_type=domain_type)


def find_emulator() -> str | None:
    return shutil.which("qemu-system-x86_64")
