"""Opening a libvirt connection: URI choice, the lazy ``libvirt`` import, and error mapping.

``$VMLOG_LIBVIRT_URI`` points the whole product at another libvirt, for example its built-in test
driver (``test:///default``), which needs neither a daemon nor root and on which the fast tests run.
That driver keeps its domains only while some connection to it is open in the process, so the
first connection to it opens a second one that stays open for the rest of the process: a VM defined
through one backend object is still there when the next one opens, as with a daemon.
"""

from __future__ import annotations

import atexit
import os
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from hypervisors.errors import (
    BackendUnavailable,
    HypervisorError,
    InvalidState,
    OperationFailed,
    OperationTimeout,
    Unsupported,
    VMNotFound,
)
from hypervisors.libvirt.remote_fixes import connect_fix

BACKEND = "kvm"
URI_ENV = "VMLOG_LIBVIRT_URI"
INSTALL_HINT = (
    "install libvirt-python and libvirt-daemon: `apt-get install libvirt-daemon-system qemu-system-x86"
    " libvirt-dev pkg-config && pip install libvirt-python`, then start libvirtd"
)
START_DAEMON_HINT = "start libvirtd: `libvirtd -d` (or `systemctl start libvirtd virtlogd`)"

# libvirt's virErrorNumber values this backend tells apart (stable ABI).
ERR_NO_SUPPORT = 3
ERR_INVALID_ARG = 8  # also "unsupported flags (0x..) in function ..." from drivers that lack a flag
ERR_OPERATION_FAILED = 9
ERR_NO_DOMAIN = 42
ERR_OPERATION_INVALID = 55
ERR_OPERATION_TIMEOUT = 68
ERR_ARGUMENT_UNSUPPORTED = 74
ERR_OPERATION_UNSUPPORTED = 84
ERR_AGENT_UNRESPONSIVE = 86  # "QEMU guest agent is not connected" / "not responding"
ERR_AGENT_UNSYNCED = 97
AGENT_FIX = "install and start the QEMU guest agent in the guest (Debian/Ubuntu: apt-get install qemu-guest-agent)"


def import_libvirt() -> ModuleType:
    """The ``libvirt`` module, or ``BackendUnavailable`` saying how to install it."""
    try:
        import libvirt
    except ImportError as exc:
        raise BackendUnavailable(
            f"the libvirt Python bindings are not installed ({exc})", fix=INSTALL_HINT, backend=BACKEND
        ) from exc
    # libvirt prints every error to stderr by default; we raise them as exceptions instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def default_uri() -> str:
    """``$VMLOG_LIBVIRT_URI``, else the system daemon for root and the session daemon for users."""
    env = os.environ.get(URI_ENV, "").strip()
    if env:
        return env
    return "qemu:///system" if os.geteuid() == 0 else "qemu:///session"


# Transports that reach the daemon through a network protocol: its files are the far side's, even on localhost.
NETWORK_TRANSPORTS = ("ssh", "libssh", "libssh2", "tcp", "tls", "ext")


def is_remote(uri: str) -> bool:
    """True if the URI names another machine or goes through a network transport (``qemu+ssh://...``).

    vmlog then reaches the host's files only through libvirt's storage API, never by path.
    """
    parts = urlsplit(uri)
    host = parts.hostname or ""
    scheme = parts.scheme.split("+")
    if len(scheme) > 1 and scheme[1] in NETWORK_TRANSPORTS:
        return True
    return bool(host) and host not in ("localhost", "127.0.0.1", "::1")


def is_local_system(uri: str) -> bool:
    """True for the local system daemon, where QEMU would otherwise run as ``libvirt-qemu``."""
    parts = urlsplit(uri)
    return not is_remote(uri) and parts.scheme.split("+")[0] == "qemu" and parts.path.rstrip("/") == "/system"


_driver_anchors: dict[str, Any] = {}  # URI -> the connection that keeps a test driver's state alive


def is_shared_test_driver(uri: str) -> bool:
    """True for ``test:///default``, the test driver whose state every connection of the process shares."""
    parts = urlsplit(uri)
    return parts.scheme == "test" and not parts.netloc and parts.path.rstrip("/") == "/default"


def open_connection(libvirt: ModuleType, uri: str) -> Any:
    """Open ``uri`` read-write; an unreachable daemon becomes ``BackendUnavailable`` with the fix."""
    conn = _open(libvirt, uri)
    if is_shared_test_driver(uri) and uri not in _driver_anchors:
        if not _driver_anchors:
            atexit.register(_close_anchors, libvirt)  # before the interpreter tears libvirt down
        _driver_anchors[uri] = _open(libvirt, uri)
    return conn


def _close_anchors(libvirt: ModuleType) -> None:
    while _driver_anchors:
        _uri, conn = _driver_anchors.popitem()
        try:
            conn.close()
        except libvirt.libvirtError:
            pass


def _open(libvirt: ModuleType, uri: str) -> Any:
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        text = str(exc)
        fix = START_DAEMON_HINT
        if is_remote(uri):
            fix = connect_fix(uri, text)
        elif "ermission denied" in text:
            fix = "add your user to the libvirt group (`adduser $USER libvirt`) or use qemu:///session"
        raise BackendUnavailable(f"cannot connect to libvirt at {uri}: {text}", fix=fix, backend=BACKEND) from exc
    if conn is None:  # old bindings returned None instead of raising
        raise BackendUnavailable(f"cannot connect to libvirt at {uri}", fix=START_DAEMON_HINT, backend=BACKEND)
    return conn


def error_code(exc: Exception) -> int | None:
    return exc.get_error_code() if hasattr(exc, "get_error_code") else None


def rejects_flags(exc: Exception) -> bool:
    """True if libvirt refused the flags of a call rather than the call (a driver without that flag)."""
    code = error_code(exc)
    return code == ERR_ARGUMENT_UNSUPPORTED or (code == ERR_INVALID_ARG and "unsupported flags" in str(exc))


def map_error(exc: Exception, what: str, name: str | None = None) -> HypervisorError:
    """Turn a ``libvirtError`` into the matching vmlog hypervisor error, keeping libvirt's words."""
    code = error_code(exc)
    detail = str(exc)
    target = f" {name!r}" if name else ""
    if code == ERR_NO_DOMAIN:
        return VMNotFound(
            f"no VM{target} in libvirt ({detail})", fix="list the VMs with `virsh list --all`", backend=BACKEND
        )
    if code == ERR_OPERATION_INVALID:
        return InvalidState(
            f"cannot {what}{target} in its current state: {detail}",
            fix="check the VM's state first (`vml status`, `virsh domstate`)",
            backend=BACKEND,
        )
    if code in (ERR_AGENT_UNRESPONSIVE, ERR_AGENT_UNSYNCED):
        return OperationTimeout(f"cannot {what}{target}: {detail}", fix=AGENT_FIX, backend=BACKEND)
    if code == ERR_OPERATION_TIMEOUT:
        return OperationTimeout(f"{what}{target} timed out: {detail}", fix="retry when the host is less busy",
                                backend=BACKEND)
    if code in (ERR_NO_SUPPORT, ERR_OPERATION_UNSUPPORTED, ERR_ARGUMENT_UNSUPPORTED):
        return Unsupported(f"libvirt cannot {what}{target}: {detail}", backend=BACKEND)
    return OperationFailed(
        f"libvirt failed to {what}{target}: {detail}",
        fix="see the domain log under /var/log/libvirt/qemu/ (or ~/.cache/libvirt/qemu/log/)",
        backend=BACKEND,
    )
