"""The layers of a project on a remote libvirt host: volumes of vmlog's pool there, never files of this machine.

Volume names are the layer names, so the records (``project.json``, ``state.json``) read the same as for a
local project; a layer's path is the host's path of its volume, which only goes into the VM's definition. The
base image goes to the host once, keyed by its sha256, and every project of the home on that host shares it.
What cannot be done through the storage API (rewriting a layer's backing file) is refused with the way round.
"""

from __future__ import annotations

import atexit
import json
import re
import struct
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from hypervisors import registry
from hypervisors.base import HostStorage, Hypervisor
from hypervisors.errors import InvalidState, Unsupported
from vmlog.errors import InvalidInput
from vmlog.projects.layers import CLUSTER_SIZE, LayerStore
from vmlog.projects.model import Project

QCOW2_MAGIC = b"QFI\xfb"
L2_OFFSET_MASK = 0x00FFFFFFFFFFFE00
EXTENDED_L2 = 1 << 4  # incompatible feature bit: subclusters, L2 entries twice as long
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def seed_volume_name(project: Project) -> str:
    """The volume of a project's seed ISO on its host (one per project: it holds the project's context)."""
    return f"seed-{project.id}.iso"


BASE_PREFIX = "base-"


def base_volume_name(sha256: str, fmt: str) -> str:
    """The volume a base image has on every host: named by its content, so one copy serves all projects."""
    return f"{BASE_PREFIX}{sha256}.{fmt}"


def base_of_volume(volume: str) -> tuple[str, str] | None:
    """(sha256, format) of a base volume's name (:func:`base_volume_name` read back), None for a layer."""
    if not volume.startswith(BASE_PREFIX):
        return None
    sha256, _, fmt = volume[len(BASE_PREFIX):].partition(".")
    return sha256, fmt


class RemoteLayerStore(LayerStore):
    """The layers of one project as volumes of the home's pool on the project's host.

    ``dir`` stays the (unused) local ``layers/`` directory, so code that looks there for files finds none.
    The storage is opened on first use: reading a project's records needs no connection.
    """

    remote = True

    def __init__(self, directory: Path, open_storage: Callable[[], HostStorage]) -> None:
        super().__init__(directory)
        self._open_storage = open_storage
        self._storage: HostStorage | None = None

    @property
    def storage(self) -> HostStorage:
        if self._storage is None:
            self._storage = self._open_storage()
        return self._storage

    def path(self, name: str) -> Path:
        return Path(self.storage.volume_path(name))

    def files(self) -> list[str]:
        """None here: the pool is shared by the home's projects on the host, and repair leaves it alone."""
        return []

    def _volume_of(self, backing: Path) -> str:
        if str(PurePosixPath(backing).parent) != str(PurePosixPath(self.storage.volume_path("x")).parent):
            raise InvalidInput(f"{backing} is not a volume of the host's pool", fix="`vml doctor --uri URI`")
        return PurePosixPath(backing).name

    def create_overlay(self, name: str, backing: Path, backing_format: str) -> Path:
        self.storage.create_overlay(name, self._volume_of(backing), cluster_size=CLUSTER_SIZE)
        return self.path(name)

    def create_overlays(self, overlays: dict[str, tuple[Path, str]]) -> None:
        """One after another over the one connection; all gone again if one fails."""
        try:
            for name, (backing, backing_format) in overlays.items():
                self.create_overlay(name, backing, backing_format)
        except BaseException:
            for name in overlays:
                self.remove(name)
            raise

    def create_blank(self, name: str, size: int | str) -> Path:
        self.storage.create_blank(name, parse_size(size), cluster_size=CLUSTER_SIZE)
        return self.path(name)

    def backing_name(self, name: str) -> str | None:
        """The volume under ``name`` (libvirt records the host's absolute path; its last part is the name)."""
        backing = self.storage.backing_path(name)
        return PurePosixPath(backing).name if backing else None

    def has_changes(self, name: str) -> bool:
        """Read from the volume's own tables on the host: its header, L1 table and the L2 tables in use."""
        header = self.storage.read_range(name, 0, 104)
        if header[:4] != QCOW2_MAGIC:
            return self.storage.allocation(name) > 0
        version, cluster_bits, l1_size, l1_offset = (
            struct.unpack(">I", header[4:8])[0], struct.unpack(">I", header[20:24])[0],
            struct.unpack(">I", header[36:40])[0], struct.unpack(">Q", header[40:48])[0],
        )  # fmt: skip
        features = struct.unpack(">Q", header[72:80])[0] if version >= 3 else 0
        l2_bytes = (1 << cluster_bits) * (2 if features & EXTENDED_L2 else 1)
        l1 = self.storage.read_range(name, l1_offset, l1_size * 8)
        for (entry,) in struct.iter_unpack(">Q", l1[: len(l1) // 8 * 8]):
            if entry & L2_OFFSET_MASK and any(self.storage.read_range(name, entry & L2_OFFSET_MASK, l2_bytes)):
                return True
        return False

    def rebase(self, name: str, backing: Path, backing_format: str) -> None:
        raise Unsupported(
            f"layer {name} is a volume on {self.storage.host}: its backing file cannot be rewritten from here,"
            " so a state with a child cannot be merged away",
            fix="keep the state, or `vml state export` the project's states and import them into a local project",
        )

    def remove(self, name: str) -> None:
        if self.storage.exists(name):
            self.storage.delete(name)

    def exists(self, name: str) -> bool:
        return self.storage.exists(name)

    def allocated(self, name: str) -> int:
        return self.storage.allocation(name) if self.storage.exists(name) else 0

    def capacity(self, name: str) -> int:
        """The volume's capacity as the host reports it: the size the guest sees."""
        return self.storage.capacity(name)

    def resize(self, name: str, size: int) -> None:
        """The host grows the volume (``virStorageVolResize``): no file of it is opened here."""
        self.storage.resize(name, size)

    def make_durable(self, name: str) -> None:
        """Nothing to do here: the host wrote the volume, and a stopped VM holds nothing unwritten."""

    def root_image(self, sha256: str, fmt: str, local: Path) -> Path:
        """The base's volume on the host, uploaded (and read back) from the store's file the first time."""
        name = base_volume_name(sha256, fmt)
        if not self.storage.exists(name):
            self.storage.ensure_copy(local, name, sha256)
        return self.path(name)

    def upload(self, source: Path, name: str) -> Path:
        """A small file of the project (a seed ISO) as volume ``name``, read back before it counts."""
        self.remove(name)
        self.storage.upload(source, name, verify=True)
        return self.path(name)

    def remove_all(self, names: list[str]) -> list[str]:
        """Delete these volumes, overlays before what they back onto; the names kept (still backing another)."""
        pending = [name for name in dict.fromkeys(names) if self.storage.exists(name)]
        while pending:
            kept = []
            for name in pending:
                try:
                    self.storage.delete(name)
                except InvalidState:  # another volume backs onto it: after that one, or never (a shared base)
                    kept.append(name)
            if len(kept) == len(pending):
                return kept
            pending = kept
        return []


def parse_size(size: int | str) -> int:
    """Bytes of a size as ``qemu-img`` takes it (``20G``, ``512M``, a plain number)."""
    if isinstance(size, int):
        return size
    found = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", str(size).upper())
    if found is None:
        raise InvalidInput(f"cannot read {size!r} as a size", fix="give it as e.g. 20G or 512M")
    return int(found.group(1)) * SIZE_UNITS[found.group(2)]


_open_backends: dict[str, tuple[Hypervisor, HostStorage]] = {}


def host_storage(project: Project) -> HostStorage:
    """The storage of ``project``'s host, one connection per host and home for the whole process."""
    assert project.storage_owner is not None
    key = json.dumps([project.backend, project.backend_options, project.storage_owner], sort_keys=True, default=str)
    if key not in _open_backends:
        if not _open_backends:
            atexit.register(_close_all)
        backend = registry.open_backend(project.backend, **project.backend_options)
        _open_backends[key] = (backend, backend.host_storage(project.storage_owner))
    return _open_backends[key][1]


def _close_all() -> None:
    while _open_backends:
        _key, (backend, _storage) = _open_backends.popitem()
        try:
            backend.close()
        except Exception:  # at exit nothing is left to tell
            pass


def layer_store(directory: Path, project: Project) -> RemoteLayerStore:
    return RemoteLayerStore(directory, lambda: host_storage(project))


def remove_project_volumes(layers: LayerStore, project: Project, states: list[dict[str, str]]) -> list[str]:
    """Delete a remote project's volumes: its live layers, its states' layers, its roots, and its bases where no
    other project's layer backs onto them. The names kept; nothing for a local project."""
    if not isinstance(layers, RemoteLayerStore):
        return []
    names = [*project.live.values(), *(name for layers_of in states for name in layers_of.values())]
    names.append(seed_volume_name(project))
    for root in project.roots.values():
        if root.file is not None:
            names.append(root.file)
        elif root.image_sha256 is not None:
            names.append(base_volume_name(root.image_sha256, root.format))
    kept = layers.remove_all(names)
    bases = {base_volume_name(r.image_sha256, r.format) for r in project.roots.values() if r.image_sha256}
    return [name for name in kept if name not in bases]
