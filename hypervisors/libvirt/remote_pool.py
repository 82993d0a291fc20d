"""vmlog's storage pool on a libvirt host: one ``dir`` pool per vmlog home, found by name, made when missing.

On a remote host (``qemu+ssh://``) the pool's directory is the host's, never this machine's: vmlog reaches it
only through libvirt's storage API. The pool is named after the vmlog home that owns it, so two users (or two
homes of one user) sharing a host never see each other's volumes.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from hypervisors.errors import OperationFailed
from hypervisors.libvirt import connection

POOL_PREFIX = "vmlog-"
SYSTEM_POOLS_DIR = "/var/lib/libvirt/vmlog"  # where a pool goes on a host reached as /system
ERR_NO_STORAGE_POOL = 49  # virErrorNumber VIR_ERR_NO_STORAGE_POOL


def escape(text: str) -> str:
    """XML text escaping, as ``xml.sax.saxutils.escape`` (whose module imports urllib.request and http.client)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pool_name(home_key: str) -> str:
    """The pool's name for a vmlog home (``home_key``: something stable and unique to it, e.g. host + path)."""
    return POOL_PREFIX + hashlib.sha256(home_key.encode()).hexdigest()[:12]


def default_pool_directory(name: str) -> str:
    """The directory on the host for pool ``name`` when the user names none."""
    return f"{SYSTEM_POOLS_DIR}/{name}"


@dataclass(frozen=True)
class PoolInfo:
    """A pool as the host reports it; ``path`` is the host's directory (never opened here)."""

    name: str
    path: str
    active: bool
    capacity: int
    allocation: int
    available: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "active": self.active, "capacity": self.capacity,
                "allocation": self.allocation, "available": self.available}


def _libvirt_error(libvirt: Any) -> type[Exception]:
    return libvirt.libvirtError  # type: ignore[no-any-return]


def find_pool(conn: Any, name: str) -> Any | None:
    """The pool ``name`` on the host, or None."""
    libvirt = connection.import_libvirt()
    try:
        return conn.storagePoolLookupByName(name)
    except _libvirt_error(libvirt) as exc:
        if connection.error_code(exc) == ERR_NO_STORAGE_POOL:
            return None
        raise connection.map_error(exc, "look up the storage pool", name) from exc



def pool_xml(name: str, directory: str) -> str:
    """A ``dir`` pool; 0711 lets QEMU, running as another user on the host, reach the volumes it is given."""
    return (
        f"<pool type='dir'><name>{escape(name)}</name>"
        f"<target><path>{escape(directory)}</path><permissions><mode>0711</mode></permissions></target></pool>"
    )


def ensure_pool(conn: Any, name: str, directory: str | None = None) -> Any:
    """Pool ``name``, defined (in ``directory`` on the host), built, started and set to autostart if it was not."""
    libvirt = connection.import_libvirt()
    pool = find_pool(conn, name)
    try:
        if pool is None:
            pool = conn.storagePoolDefineXML(pool_xml(name, directory or default_pool_directory(name)), 0)
            pool.build(0)  # creates the directory on the host
        if not pool.isActive():
            pool.create(0)
        if not pool.autostart():
            pool.setAutostart(1)
    except _libvirt_error(libvirt) as exc:
        raise connection.map_error(exc, "set up the storage pool", name) from exc
    return pool


def pool_info(pool: Any) -> PoolInfo:
    """Name, host directory, state and space of ``pool`` (after a refresh when it runs)."""
    libvirt = connection.import_libvirt()
    try:
        active = bool(pool.isActive())
        if active:
            pool.refresh(0)
        _state, capacity, allocation, available = pool.info()
        root = ET.fromstring(pool.XMLDesc(0))
    except _libvirt_error(libvirt) as exc:
        raise connection.map_error(exc, "read the storage pool", pool.name()) from exc
    return PoolInfo(name=pool.name(), path=root.findtext("target/path") or "", active=active,
                    capacity=int(capacity), allocation=int(allocation), available=int(available))


def remove_pool(conn: Any, name: str) -> None:
    """Stop and forget pool ``name``; its directory goes too when empty. Volumes in it are refused, not lost."""
    libvirt = connection.import_libvirt()
    pool = find_pool(conn, name)
    if pool is None:
        return
    try:
        if pool.isActive():
            pool.refresh(0)
            if pool.numOfVolumes() > 0:
                raise OperationFailed(f"storage pool {name} still holds {pool.numOfVolumes()} volume(s)",
                                      fix="delete its volumes first", backend=connection.BACKEND)
            pool.destroy()
        pool.delete(0)
        pool.undefine()
    except _libvirt_error(libvirt) as exc:
        raise connection.map_error(exc, "remove the storage pool", name) from exc
