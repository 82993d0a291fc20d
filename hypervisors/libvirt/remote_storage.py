"""Volumes in vmlog's pool on a libvirt host: upload, download, qcow2 overlays, listing and deletion.

Nothing here opens a path of the host: a volume's ``path`` is the host's name for it, used only inside libvirt
XML (a backing store). Uploads are checked before they count: the sha256 of the file is computed here while it
is sent; the volume is made empty and the host's file must then have exactly the file's length
(``virStorageVolGetInfoFlags`` with ``GET_PHYSICAL``); ``verify=True`` also reads the volume back and compares
digests. The length check is the default because SSH already protects the bytes in flight (every packet carries
a MAC) and libvirt reports a failed write on the host when the stream finishes; what is left, a volume cut short
(a killed upload leaves one), the length shows for the price of one call, where reading back doubles the traffic.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors.errors import InvalidState, OperationFailed, VMExists
from hypervisors.libvirt import connection, remote_pool
from hypervisors.libvirt.remote_pool import escape
from hypervisors.libvirt.remote_streams import Progress, Transfer, hash_stream, receive_file, send_file

FORMATS = ("raw", "qcow2")
ERR_NO_STORAGE_VOL = 50  # virErrorNumber VIR_ERR_NO_STORAGE_VOL


@dataclass(frozen=True)
class RemoteVolume:
    """A volume of the pool as the host describes it; ``path`` and ``backing`` are the host's paths."""

    name: str
    path: str
    format: str
    capacity: int
    allocation: int
    backing: str | None = None
    backing_format: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "format": self.format, "capacity": self.capacity,
                "allocation": self.allocation, "backing": self.backing, "backing_format": self.backing_format}


def _volume_from_xml(xml: str) -> RemoteVolume:
    root = ET.fromstring(xml)
    backing = root.find("backingStore")
    fmt = root.find("target/format")
    backing_fmt = backing.find("format") if backing is not None else None
    return RemoteVolume(
        name=root.findtext("name") or "",
        path=root.findtext("target/path") or "",
        format=fmt.get("type", "") if fmt is not None else "",
        capacity=int(root.findtext("capacity") or 0),
        allocation=int(root.findtext("allocation") or 0),
        backing=(backing.findtext("path") or None) if backing is not None else None,
        backing_format=backing_fmt.get("type") if backing_fmt is not None else None,
    )


class RemoteStorage:
    """vmlog's pool on the host behind ``conn``; made on first use (see :mod:`remote_pool`)."""

    def __init__(self, conn: Any, pool_name: str, directory: str | None = None, *, host: str = "") -> None:
        self._libvirt = connection.import_libvirt()
        self._conn = conn
        self.pool_name = pool_name
        self.host = host  # the URI the host was reached through
        self._pool = remote_pool.ensure_pool(conn, pool_name, directory)
        self._directory: str | None = None

    def _fail(self, exc: Exception, what: str, name: str) -> Exception:
        if connection.error_code(exc) == ERR_NO_STORAGE_VOL:
            return InvalidState(f"no volume {name!r} in storage pool {self.pool_name}", backend=connection.BACKEND,
                                fix="list the pool's volumes with `virsh vol-list POOL`")
        return connection.map_error(exc, what, name)

    def info(self) -> remote_pool.PoolInfo:
        return remote_pool.pool_info(self._pool)

    # -- listing ---------------------------------------------------------------------------
    def volumes(self) -> list[RemoteVolume]:
        """Every volume in the pool, sorted by name."""
        try:
            self._pool.refresh(0)
            found = [_volume_from_xml(vol.XMLDesc(0)) for vol in self._pool.listAllVolumes(0)]
        except self._libvirt.libvirtError as exc:
            raise connection.map_error(exc, "list the volumes of", self.pool_name) from exc
        return sorted(found, key=lambda vol: vol.name)

    def volume(self, name: str) -> RemoteVolume:
        return _volume_from_xml(self._call("describe the volume", name, lambda: self._lookup(name).XMLDesc(0)))

    def exists(self, name: str) -> bool:
        try:
            self._pool.storageVolLookupByName(name)
        except self._libvirt.libvirtError as exc:
            if connection.error_code(exc) == ERR_NO_STORAGE_VOL:
                return False
            raise connection.map_error(exc, "look up the volume", name) from exc
        return True

    def volume_names(self) -> list[str]:
        return [vol.name for vol in self.volumes()]

    def volume_path(self, name: str) -> str:
        """The host's path of volume ``name`` (made or not): a ``dir`` pool keeps each volume as a file named so."""
        if self._directory is None:
            self._directory = self.info().path.rstrip("/")
        return f"{self._directory}/{name}"

    def backing_path(self, name: str) -> str | None:
        return self.volume(name).backing

    def allocation(self, name: str) -> int:
        return self.volume(name).allocation

    def capacity(self, name: str) -> int:
        """Bytes volume ``name`` shows a guest (a qcow2 volume's virtual size)."""
        return self.volume(name).capacity

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes of volume ``name`` from ``offset`` (fewer at its end): a header, a table."""
        vol = self._call("find the volume", name, lambda: self._lookup(name))
        stream = self._conn.newStream(0)
        self._call("start the download of", name, lambda: vol.download(stream, offset, length, 0))
        parts: list[bytes] = []
        got = 0
        try:
            while True:
                want = min(262144, max(1, length - got))
                chunk = self._call("download", name, lambda want=want: stream.recv(want))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
            self._call("finish the download of", name, stream.finish)
        except BaseException:
            try:
                stream.abort()
            except self._libvirt.libvirtError:
                pass
            raise
        return b"".join(parts)[:length]

    def _lookup(self, name: str) -> Any:
        return self._pool.storageVolLookupByName(name)

    def _call(self, what: str, name: str, func: Any) -> Any:
        try:
            return func()
        except self._libvirt.libvirtError as exc:
            raise self._fail(exc, what, name) from exc

    # -- creating --------------------------------------------------------------------------
    def _create(self, xml: str, name: str) -> Any:
        if self.exists(name):
            raise VMExists(f"storage pool {self.pool_name} already holds a volume {name!r}",
                           fix="delete it first or pick another name", backend=connection.BACKEND)
        return self._call("create the volume", name, lambda: self._pool.createXML(xml, 0))

    def create_overlay(self, name: str, backing: str, *, cluster_size: int | None = None) -> RemoteVolume:
        """A new empty qcow2 volume ``name`` on top of volume ``backing`` (the backing format is always given)."""
        base = self.volume(backing)
        cluster = f"<clusterSize unit='B'>{cluster_size}</clusterSize>" if cluster_size else ""
        xml = (
            f"<volume><name>{escape(name)}</name><capacity unit='B'>{base.capacity}</capacity>"
            f"<target><format type='qcow2'/>{cluster}</target>"
            f"<backingStore><path>{escape(base.path)}</path><format type='{escape(base.format)}'/></backingStore>"
            "</volume>"
        )
        self._create(xml, name)
        return self.volume(name)

    def create_blank(self, name: str, capacity: int, *, cluster_size: int | None = None) -> RemoteVolume:
        """A new empty qcow2 volume ``name`` of ``capacity`` bytes (the root of a scratch disk's chain)."""
        cluster = f"<clusterSize unit='B'>{cluster_size}</clusterSize>" if cluster_size else ""
        xml = (f"<volume><name>{escape(name)}</name><capacity unit='B'>{int(capacity)}</capacity>"
               f"<target><format type='qcow2'/>{cluster}</target></volume>")
        self._create(xml, name)
        return self.volume(name)

    def resize(self, name: str, capacity: int) -> None:
        """Volume ``name`` grows to ``capacity`` bytes, on the host (``virStorageVolResize``; libvirt runs
        ``qemu-img resize`` there for a qcow2 volume). A smaller capacity is refused by libvirt: no shrink flag."""
        vol = self._call("find the volume", name, lambda: self._lookup(name))
        self._call("resize the volume", name, lambda: vol.resize(int(capacity), 0))

    # -- moving bytes ----------------------------------------------------------------------
    def upload(self, source: Path, name: str, *, sparse: bool = True, verify: bool = False,
               progress: Progress | None = None) -> Transfer:
        """Copy the local file ``source`` into a new volume ``name``, byte for byte, and check it arrived whole.

        A qcow2 file keeps its backing name: a relative one resolves against the pool's directory on the host,
        so layers uploaded under the names their overlays give them chain up as they did here.
        """
        size = source.stat().st_size
        # Made empty (not at the file's length), so the host's file is as long as what arrived: a cut upload shows.
        xml = (f"<volume><name>{escape(name)}</name><capacity unit='B'>0</capacity>"
               "<target><format type='raw'/></target></volume>")
        vol = self._create(xml, name)
        try:
            flags = self._libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM if sparse else 0
            stream = self._conn.newStream(0)
            self._call("start the upload to", name, lambda: vol.upload(stream, 0, size, flags))
            sent = self._call("upload to", name, lambda: send_file(stream, source, sparse=sparse, progress=progress))
            self._check_length(vol, name, size)
            if verify:
                self._check_digest(name, sent.sha256, sparse=sparse)
        except BaseException:
            self._delete_quietly(vol)
            raise
        self._pool.refresh(0)  # the host re-reads the file and sees a qcow2 with its backing store
        return sent

    def ensure_copy(self, source: Path, name: str, sha256: str, *, progress: Progress | None = None) -> RemoteVolume:
        """Volume ``name`` holding ``source``, whose sha256 the caller knows (a base image, once per host).

        An existing volume of the right length is taken as it is: a name is only ever given to one content, and a
        killed upload leaves a shorter file, which is replaced. A new upload is read back and checked in full.
        """
        size = source.stat().st_size
        if self.exists(name):
            vol = self._call("find the volume", name, lambda: self._lookup(name))
            physical = self._call("read the size of", name,
                                  lambda: vol.infoFlags(self._libvirt.VIR_STORAGE_VOL_GET_PHYSICAL))[2]
            if int(physical) == size:
                return self.volume(name)
            self.delete(name)  # what an interrupted upload left
        sent = self.upload(source, name, verify=True, progress=progress)
        if sent.sha256 != sha256:
            self.delete(name)
            raise OperationFailed(f"{source} has sha256 {sent.sha256}, not the {sha256} expected of it",
                                  fix="check the image store (`vml doctor`)", backend=connection.BACKEND)
        return self.volume(name)

    def _check_length(self, vol: Any, name: str, size: int) -> None:
        physical = self._call("read the size of", name,
                              lambda: vol.infoFlags(self._libvirt.VIR_STORAGE_VOL_GET_PHYSICAL))[2]
        if int(physical) != size:
            raise OperationFailed(f"volume {name!r} holds {physical} bytes after the upload, the file {size}",
                                  fix="retry; check the free space of the pool (`vml doctor --uri URI`)",
                                  backend=connection.BACKEND)

    def _check_digest(self, name: str, sha256: str, *, sparse: bool) -> None:
        got = self._read(name, None, sparse=sparse, progress=None)
        if got.sha256 != sha256:
            raise OperationFailed(f"volume {name!r} reads back as sha256 {got.sha256}, the file was {sha256}",
                                  fix="retry the upload", backend=connection.BACKEND)

    def download(self, name: str, target: Path, *, sparse: bool = True, progress: Progress | None = None) -> Transfer:
        """Copy volume ``name`` byte for byte into ``target`` (written to a temporary name, fsynced, renamed)."""
        partial = target.with_name(f".{target.name}.part")
        try:
            got = self._read(name, partial, sparse=sparse, progress=progress)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return got

    def _read(self, name: str, target: Path | None, *, sparse: bool, progress: Progress | None) -> Transfer:
        """Stream volume ``name`` into ``target``, or only through a hash when ``target`` is None."""
        vol = self._call("find the volume", name, lambda: self._lookup(name))
        physical = int(self._call("read the size of", name,
                                  lambda: vol.infoFlags(self._libvirt.VIR_STORAGE_VOL_GET_PHYSICAL))[2])
        flags = self._libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM if sparse else 0
        stream = self._conn.newStream(0)
        self._call("start the download of", name, lambda: vol.download(stream, 0, 0, flags))
        if target is None:
            return self._call("read back", name, lambda: hash_stream(stream, sparse=sparse, expected_size=physical))
        return self._call("download", name, lambda: receive_file(stream, target, sparse=sparse, progress=progress,
                                                                  expected_size=physical))

    # -- deleting --------------------------------------------------------------------------
    def delete(self, name: str) -> None:
        """Delete volume ``name``; refused while another volume of the pool has it as its backing store."""
        target = self.volume(name)
        users = [vol.name for vol in self.volumes() if vol.backing == target.path]
        if users:
            raise InvalidState(f"volume {name!r} is the backing store of {', '.join(users)}",
                               fix="delete the overlays on it first", backend=connection.BACKEND)
        vol = self._call("find the volume", name, lambda: self._lookup(name))
        self._call("delete the volume", name, lambda: vol.delete(0))

    def _delete_quietly(self, vol: Any) -> None:
        try:
            vol.delete(0)
        except self._libvirt.libvirtError:
            pass  # the error that brought us here is the one to report
