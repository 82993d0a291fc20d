"""What a catalog describes: appliances, their versions, and each version's downloadable images.

An appliance has versions; a version offers the same system as images in several formats (qcow2,
raw/hdd, iso, vmdk, vdi, ova, Vagrant boxes), each with mirror URLs, a size and a digest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmlog.errors import NotFound


@dataclass(frozen=True)
class ImageSource:
    """One downloadable image of one appliance version."""

    format: str
    urls: tuple[str, ...]
    size: int | None = None
    digest: tuple[str, str] | None = None  # (algo, hex)
    arch: str = "x86_64"
    digest_url: str | None = None  # where the digest is published instead (CernVM's .sha256 files)
    box_provider: str | None = None  # for Vagrant boxes: libvirt, virtualbox, vmware_desktop

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": self.format, "urls": list(self.urls), "size": self.size, "arch": self.arch}
        if self.digest:
            data["digest"] = {self.digest[0]: self.digest[1]}
        if self.digest_url:
            data["digest_url"] = self.digest_url
        if self.box_provider:
            data["box_provider"] = self.box_provider
        return data


@dataclass(frozen=True)
class ApplianceVersion:
    version: str
    images: Mapping[str, ImageSource]  # key: format, or "box/<provider>" for Vagrant boxes
    min_memory_mib: int = 512
    min_disk_gib: int = 0
    scratch_disk_gib: int = 0
    context: str = "nocloud"
    boot: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "min_memory_mib": self.min_memory_mib,
            "min_disk_gib": self.min_disk_gib,
            "scratch_disk_gib": self.scratch_disk_gib,
            "context": self.context,
            "boot": dict(self.boot),
            "images": {key: src.to_dict() for key, src in self.images.items()},
        }


@dataclass(frozen=True)
class Appliance:
    """An appliance as a catalog describes it; ``resolver`` builds versions found only online."""

    name: str
    title: str
    description: str
    versions: tuple[ApplianceVersion, ...]
    catalog: str
    resolver: Callable[[str | None], ApplianceVersion] | None = field(default=None, compare=False, repr=False)
    local_builder: bool = False  # built on this machine instead of downloaded (vmlog-test)

    def resolve(self, version: str | None = None) -> ApplianceVersion:
        """The requested version, or the newest one; online resolvers may touch the network."""
        if self.resolver is not None and not (version and any(v.version == version for v in self.versions)):
            return self.resolver(version)
        if not self.versions:
            raise NotFound(f"appliance {self.name} has no versions", fix="check its catalog")
        if version in (None, "latest"):
            return max(self.versions, key=lambda v: version_key(v.version))
        for candidate in self.versions:
            if candidate.version == version:
                return candidate
        known = ", ".join(v.version for v in self.versions)
        raise NotFound(f"appliance {self.name} has no version {version!r} (known: {known})")

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "catalog": self.catalog,
            "versions": [v.version for v in self.versions] or ["latest"],
        }


def version_key(version: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", version)]


def store_name(name: str) -> str:
    """A name usable in the store's file names (Vagrant names look like ``generic/debian12``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "appliance"
    return cleaned[:128]
