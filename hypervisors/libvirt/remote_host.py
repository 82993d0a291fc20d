"""Checking a libvirt host vmlog would use remotely: reachable, which versions, KVM, vmlog's pool and its space.

Each check names the fix for what fails; a failed connection is read for its usual causes
(:mod:`remote_fixes`). :class:`RemoteHostChecks` gives the libvirt backend its ``check_host``.
"""

from __future__ import annotations

from typing import Any

from hypervisors.base import HostCheck
from hypervisors.errors import HypervisorError
from hypervisors.libvirt import accel, connection, remote_pool
from hypervisors.libvirt.core import maps_libvirt_errors
from hypervisors.libvirt.remote_fixes import connect_fix

GIB = 1024**3
LOW_SPACE = 5 * GIB  # below this a base image and a few states no longer fit


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def connect_check(libvirt: Any, uri: str) -> tuple[HostCheck, Any | None]:
    """Open ``uri``: the connection (or None) and the check saying how it went."""
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        text = str(exc).strip()
        return HostCheck("connect", False, f"cannot connect to {uri}: {text}", fix=connect_fix(uri, text)), None
    return HostCheck("connect", True, f"connected to {conn.getHostname()} through {uri}"), conn


def versions_check(conn: Any) -> HostCheck:
    driver = str(conn.getType())
    details = {"libvirt": _version(int(conn.getLibVersion())), "driver": driver}
    try:
        details["hypervisor"] = _version(int(conn.getVersion()))
    except Exception:  # a driver without a hypervisor version
        details["hypervisor"] = "unknown"
    summary = f"libvirt {details['libvirt']}, {driver} {details['hypervisor']}"
    if driver.upper() != "QEMU":
        return HostCheck("versions", False, summary + ": not QEMU's driver", details=details,
                         fix="use a qemu+ssh://USER@HOST/system URI")
    return HostCheck("versions", True, summary, details=details)


def kvm_check(conn: Any, requested: str = "auto") -> HostCheck:
    """KVM as the host's libvirt offers it; a remote KVM cannot be tried with a test guest from here."""
    try:
        offered = conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0) is not None
    except Exception:  # libvirt says "no emulator ... for virttype kvm" when KVM is not offered
        offered = False
    decision = accel.decide_remote(accel.requested_accelerator(requested), offered)
    details = {"accelerator": decision.accelerator, "kvm_offered": str(offered).lower()}
    warnings = [decision.warning] if decision.warning else []
    if offered:
        return HostCheck("kvm", True, "the host offers KVM", details=details, warnings=warnings)
    return HostCheck("kvm", True, "the host offers no KVM: guests run under TCG there (slow)", details=details,
                     warnings=warnings + ["enable virtualisation in the host's firmware and load kvm_intel/kvm_amd"])


def pool_check(conn: Any, pool_name: str) -> HostCheck:
    """vmlog's pool for this home on the host: there or not yet, and its free space."""
    try:
        pool = remote_pool.find_pool(conn, pool_name)
        if pool is None:
            return HostCheck("pool", True, f"storage pool {pool_name} not made yet (made on first use)",
                             details={"pool": pool_name,
                                      "directory": remote_pool.default_pool_directory(pool_name)})
        info = remote_pool.pool_info(pool)
    except HypervisorError as exc:
        return HostCheck("pool", False, f"cannot read storage pool {pool_name}: {exc.message}",
                         fix="check that your user may manage storage pools on the host (libvirt group or root)")
    details = {"pool": info.name, "directory": info.path, "available": f"{info.available / GIB:.1f} GiB",
               "capacity": f"{info.capacity / GIB:.1f} GiB"}
    if not info.active:
        return HostCheck("pool", False, f"storage pool {pool_name} is defined but not running", details=details,
                         fix=f"start it on the host: `virsh pool-start {pool_name}`")
    summary = f"storage pool {pool_name}: {details['available']} free of {details['capacity']}"
    if info.available < LOW_SPACE:
        return HostCheck("pool", False, summary, details=details,
                         fix=f"free space on the host's file system under {info.path}")
    return HostCheck("pool", True, summary, details=details)


def check_host(uri: str, storage_owner: str, requested_accel: str = "auto") -> list[HostCheck]:
    """Every check of the host behind ``uri`` for the vmlog home ``storage_owner`` (only one if it cannot connect)."""
    try:
        libvirt = connection.import_libvirt()
    except HypervisorError as exc:
        return [HostCheck("connect", False, exc.message, fix=exc.fix)]
    first, conn = connect_check(libvirt, uri)
    if conn is None:
        return [first]
    try:
        pool_name = remote_pool.pool_name(storage_owner)
        return [first, versions_check(conn), kvm_check(conn, requested_accel), pool_check(conn, pool_name)]
    finally:
        conn.close()


class RemoteHostChecks:
    """``Hypervisor.check_host`` for libvirt: versions, KVM and vmlog's pool, over the backend's connection."""

    _conn: Any
    uri: str
    requested_accel: str

    @maps_libvirt_errors("checking the host")
    def check_host(self, storage_owner: str) -> list[HostCheck]:
        pool_name = remote_pool.pool_name(storage_owner)
        connected = HostCheck("connect", True, f"connected to {self._conn.getHostname()} through {self.uri}")
        return [connected, versions_check(self._conn), kvm_check(self._conn, self.requested_accel),
                pool_check(self._conn, pool_name)]
