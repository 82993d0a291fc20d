"""The records of a project and its states, as stored in ``project.json`` and ``state.json``.

Plain data with a JSON round trip; file names of layers are relative to the project's ``layers/``
directory so a vmlog home can move.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PROJECT_FORMAT = 1
STATE_FORMAT = 1
SYSTEM_DISK = "system"
SCRATCH_DISK = "scratch"


def new_id() -> str:
    """An immutable state id: 16 random hex digits (short prefixes stay unique in practice)."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class ChainRoot:
    """What a disk's chain starts from: a base image in the image store, or a blank file of the project."""

    format: str
    image_sha256: str | None = None  # a base image in the shared store
    file: str | None = None  # a file in the project's layers/ (a blank scratch disk)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class State:
    id: str
    parent: str | None
    name: str | None
    message: str
    author: str
    created: float
    layers: dict[str, str]  # disk label -> frozen layer file name
    spec: dict[str, Any]
    memory: str | None = None  # memory image file name in the state's directory
    release_mounts: list[dict[str, Any]] = field(default_factory=list)
    backend: str | None = None  # the backend (and stack) a memory image belongs to
    native_id: str | None = None  # the backend-owned snapshot holding this state (native-tree backends)

    def label(self) -> str:
        return f"{self.id[:8]} {self.name}" if self.name else self.id[:8]

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON data; nested values are shallow copies (``asdict`` deep-copies: 1 ms a state).

        The index writes thousands of these at once, so no deep copy: treat nested values as read-only.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in _STATE_FIELDS}
        data["layers"] = dict(self.layers)
        data["spec"] = dict(self.spec)
        data["release_mounts"] = [dict(m) for m in self.release_mounts]
        data["format"] = STATE_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        data = dict(data)
        data.pop("format", None)
        return cls(**data)


_STATE_FIELDS = tuple(f.name for f in fields(State))


@dataclass
class Project:
    id: str
    name: str
    backend: str
    backend_options: dict[str, Any]
    vm_name: str
    roots: dict[str, ChainRoot]  # disk label -> chain root
    live: dict[str, str]  # disk label -> live layer file name
    current: str | None  # the state the live layer sits on (None: straight on the roots)
    spec: dict[str, Any]  # VMSpec template; disk paths are filled from ``live`` when used
    created: float = field(default_factory=time.time)
    base: dict[str, Any] = field(default_factory=dict)  # name/version/sha256 of the base appliance
    # the vmlog home whose storage on a remote host holds the layers (None: they are files in layers/)
    storage_owner: str | None = None

    @property
    def uri(self) -> str | None:
        """The libvirt URI the project's VM lives on; None for the backend's default (this machine, in old records)."""
        value = self.backend_options.get("uri")
        return str(value) if value else None

    @property
    def remote(self) -> bool:
        """True when the layers live on another host, reached only through the hypervisor's storage API."""
        return self.storage_owner is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROJECT_FORMAT,
            "id": self.id,
            "name": self.name,
            "backend": self.backend,
            "backend_options": self.backend_options,
            "vm_name": self.vm_name,
            "roots": {label: root.to_dict() for label, root in self.roots.items()},
            "live": dict(self.live),
            "current": self.current,
            "spec": self.spec,
            "created": self.created,
            "base": self.base,
            **({"storage_owner": self.storage_owner} if self.storage_owner else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Project:
        return cls(
            id=data["id"],
            name=data["name"],
            backend=data["backend"],
            backend_options=dict(data.get("backend_options") or {}),
            vm_name=data["vm_name"],
            roots={label: ChainRoot(**root) for label, root in data["roots"].items()},
            live=dict(data["live"]),
            current=data.get("current"),
            spec=dict(data["spec"]),
            created=float(data.get("created", 0.0)),
            base=dict(data.get("base") or {}),
            storage_owner=data.get("storage_owner") or None,
        )
