"""What a catalog describes: appliances, their versions, and each version's downloadable images.

An appliance has versions; a version offers the same system as images in several formats (qcow2,
raw/hdd, iso, vmdk, vdi, ova, Vagrant boxes), each with mirror URLs, a size and a digest.
"""

from __future__ import annotations

import functools
import os
import platform
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
    for_host: bool = True  # False for a box built for another architecture than this machine's

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": self.format, "urls": list(self.urls), "size": self.size, "arch": self.arch}
        if self.digest:
            data["digest"] = {self.digest[0]: self.digest[1]}
        if self.digest_url:
            data["digest_url"] = self.digest_url
        if self.box_provider:
            data["box_provider"] = self.box_provider
        if not self.for_host:
            data["for_host"] = False
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
    version_order: str = "natural"  # "rubygems" for Vagrant boxes, ordered as Vagrant orders them

    @property
    def store_name(self) -> str:
        """The name its images carry in the store (``generic/debian12`` is stored as ``generic-debian12``)."""
        return store_name(self.name)

    def sorted_versions(self) -> list[ApplianceVersion]:
        """Oldest first, in this catalog's version order."""
        return sorted(self.versions, key=lambda v: sort_key(v.version, self.version_order))

    def resolve(self, version: str | None = None) -> ApplianceVersion:
        """The requested version, or the newest one; online resolvers may touch the network.

        For Vagrant metadata the newest is the newest with a box for this machine's architecture, as
        Vagrant picks it; one that offers none for it still answers with its newest version.
        """
        if self.resolver is not None and not (version and any(v.version == version for v in self.versions)):
            return self.resolver(version)
        if not self.versions:
            raise NotFound(f"appliance {self.name} has no versions", fix="check its catalog")
        if version in (None, "latest"):
            ordered = self.sorted_versions()
            if self.version_order == "rubygems":
                usable = [v for v in ordered if any(src.for_host for src in v.images.values())]
                ordered = usable or ordered
            return ordered[-1]
        for candidate in self.versions:
            if candidate.version == version:
                return candidate
        if self.version_order == "rubygems":  # Vagrant's "= 1.0" is satisfied by 1.0.0
            for candidate in self.versions:
                if gem_compare(candidate.version, version) == 0:
                    return candidate
        known = ", ".join(v.version for v in self.sorted_versions())
        raise NotFound(f"appliance {self.name} has no version {version!r} (known: {known})")

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "catalog": self.catalog,
            "versions": [v.version for v in self.sorted_versions()] or ["latest"],
        }


def version_key(version: str) -> list[tuple[int, int | str]]:
    """Natural order of vmlog catalogs' versions (4.10 after 4.9)."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_]", version)]


def _gem_segments(version: str) -> list[int | str]:
    """RubyGems' canonical segments: digit runs and letter runs, ``-`` read as ``.pre.``, trailing zeros of
    the release part and of the pre-release part dropped (so ``1.0`` equals ``1``)."""
    text = version.strip().replace("-", ".pre.")
    segments: list[int | str] = [int(s) if s.isdigit() else s for s in re.findall(r"[0-9]+|[A-Za-z]+", text)]
    first_text = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    canonical: list[int | str] = []
    for part in (segments[:first_text], segments[first_text:]):
        while part and part[-1] == 0:
            part = part[:-1]
        canonical.extend(part)
    return canonical


def gem_compare(a: str, b: str) -> int:
    """Compare two versions as ``Gem::Version#<=>`` does: a letter segment sorts below any number, so a
    pre-release (``1.0.0.beta1``) comes before its release (``1.0.0``); missing segments count as 0."""
    left, right = _gem_segments(a), _gem_segments(b)
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else 0
        y = right[i] if i < len(right) else 0
        if x == y:
            continue
        if isinstance(x, str) != isinstance(y, str):
            return -1 if isinstance(x, str) else 1
        return -1 if x < y else 1  # type: ignore[operator]
    return 0


gem_version_key = functools.cmp_to_key(gem_compare)


def sort_key(version: str, order: str = "natural") -> Any:
    """The sort key of ``version`` in a catalog's order: ``natural`` (vmlog) or ``rubygems`` (Vagrant)."""
    return gem_version_key(version) if order == "rubygems" else version_key(version)


# Architecture names as Vagrant writes them (``Vagrant::Util::Platform.architecture``) -> vmlog's names.
VAGRANT_ARCHES = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "i386": "i386", "386": "i386",
                  "x86": "i386", "arm64": "aarch64", "aarch64": "aarch64"}  # fmt: skip


def host_arch() -> str:
    """This machine's architecture in vmlog's names (``x86_64``, ``aarch64``); ``$VMLOG_HOST_ARCH`` overrides."""
    machine = os.environ.get("VMLOG_HOST_ARCH") or platform.machine().lower()
    return VAGRANT_ARCHES.get(machine, machine or "unknown")


def store_name(name: str) -> str:
    """A name usable in the store's file names (Vagrant names look like ``generic/debian12``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "appliance"
    return cleaned[:128]


def store_ref(ref: str) -> str:
    """A store reference for an appliance named as its catalog names it: ``hashicorp/bionic64:1.0`` gives
    ``hashicorp-bionic64:1.0`` (the version part is left alone)."""
    name, sep, version = ref.partition(":")
    return store_name(name) + sep + version if "/" in name else ref
