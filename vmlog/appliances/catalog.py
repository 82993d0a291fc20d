"""Appliance catalogs: vmlog's JSON catalog format, Vagrant box metadata, and the built-in entries.

A catalog lists appliances; an appliance has versions; a version offers the same system as images
in several formats (qcow2, raw/hdd, iso, vmdk, vdi, ova, Vagrant boxes), each with mirror URLs, a
size and a digest. The catalogs a user added are recorded in ``<config>/catalogs.json``; the
built-in CernVM and vmlog-test appliances are always there. The format is documented in
``docs/catalog-format.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog.appliances.download import DIGEST_ALGOS, check_url, fetch_small
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.fsutil import atomic_write_text

CATALOG_FORMAT = 1
CATALOG_FILE = "catalogs.json"
MAX_CATALOG_BYTES = 4 << 20
IMAGE_FORMATS = ("qcow2", "raw", "hdd", "img", "iso", "vmdk", "vdi", "ova", "box")
CONTEXT_KINDS = ("nocloud", "cernvm", "none")
VAGRANT_PROVIDERS = ("libvirt", "virtualbox", "vmware_desktop")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


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


# -- parsing -----------------------------------------------------------------------------------


def _bad(source: str, message: str) -> InvalidInput:
    return InvalidInput(f"catalog {source}: {message}", fix="fix the catalog file (see docs/catalog-format.md)")


def _digest(source: str, value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1:
        raise _bad(source, f"digest must be an object with one of {DIGEST_ALGOS}: {value!r}")
    ((algo, hexdigest),) = value.items()
    if algo not in DIGEST_ALGOS or not isinstance(hexdigest, str):
        raise _bad(source, f"unsupported digest {algo!r}; use sha256 or sha512")
    return algo, hexdigest.lower()


def _int(source: str, data: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(source, f"{key} must be a non-negative integer, not {value!r}")
    return value


def parse_vmlog_catalog(doc: Mapping[str, Any], *, source: str) -> list[Appliance]:
    """Read vmlog's own catalog format (``{"vmlog_catalog": 1, "appliances": [...]}``)."""
    if doc.get("vmlog_catalog") != CATALOG_FORMAT:
        raise _bad(source, f"unsupported catalog format {doc.get('vmlog_catalog')!r} (expected {CATALOG_FORMAT})")
    appliances = []
    for entry in doc.get("appliances", []):
        name = entry.get("name")
        if not isinstance(name, str) or not _SAFE.match(name):
            raise _bad(source, f"invalid appliance name {name!r}")
        versions = []
        for ver in entry.get("versions", []):
            version = str(ver.get("version", ""))
            if not _SAFE.match(version):
                raise _bad(source, f"{name}: invalid version {version!r}")
            context = ver.get("context", "nocloud")
            if context not in CONTEXT_KINDS:
                raise _bad(source, f"{name} {version}: context must be one of {CONTEXT_KINDS}")
            default_arch = ver.get("arch", "x86_64")
            images: dict[str, ImageSource] = {}
            for fmt, img in (ver.get("images") or {}).items():
                if fmt not in IMAGE_FORMATS:
                    raise _bad(source, f"{name} {version}: unknown image format {fmt!r}")
                urls = img.get("urls") or ([img["url"]] if img.get("url") else [])
                if not urls or not all(isinstance(u, str) for u in urls):
                    raise _bad(source, f"{name} {version} {fmt}: no url")
                digest = _digest(source, img.get("digest"))
                if digest is None and not img.get("digest_url"):
                    raise _bad(source, f"{name} {version} {fmt}: a digest is required")
                provider = img.get("box_provider")
                key = f"box/{provider}" if fmt == "box" and provider else fmt
                images[key] = ImageSource(
                    format=fmt,
                    urls=tuple(urls),
                    size=_int(source, img, "size", None),
                    digest=digest,
                    arch=img.get("arch", default_arch),
                    digest_url=img.get("digest_url"),
                    box_provider=provider,
                )
            versions.append(
                ApplianceVersion(
                    version=version,
                    images=images,
                    min_memory_mib=_int(source, ver, "min_memory_mib", 512) or 512,
                    min_disk_gib=_int(source, ver, "min_disk_gib", 0) or 0,
                    scratch_disk_gib=_int(source, ver, "scratch_disk_gib", 0) or 0,
                    context=context,
                    boot=dict(ver.get("boot") or {}),
                )
            )
        appliances.append(
            Appliance(
                name=name,
                title=str(entry.get("title", name)),
                description=str(entry.get("description", "")),
                versions=tuple(versions),
                catalog=source,
            )
        )
    return appliances


def parse_vagrant_metadata(doc: Mapping[str, Any], *, source: str) -> list[Appliance]:
    """Read Vagrant box catalog metadata: one box name, versions, one ``.box`` per provider."""
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(source, "Vagrant metadata without a box name")
    versions = []
    for ver in doc.get("versions", []):
        version = str(ver.get("version", ""))
        if not _SAFE.match(version):
            raise _bad(source, f"{name}: invalid version {version!r}")
        images = {}
        for provider in ver.get("providers", []):
            pname = provider.get("name")
            if pname not in VAGRANT_PROVIDERS or not provider.get("url"):
                continue  # providers vmlog cannot use (docker, hyperv, ...) are skipped
            algo = str(provider.get("checksum_type", "")).lower()
            checksum = provider.get("checksum")
            digest = (algo, str(checksum).lower()) if algo in DIGEST_ALGOS and checksum else None
            images[f"box/{pname}"] = ImageSource(
                format="box", urls=(provider["url"],), digest=digest, box_provider=pname
            )
        versions.append(ApplianceVersion(version=version, images=images, context="none"))
    return [
        Appliance(
            name=store_name(name),
            title=name,
            description=str(doc.get("description", "") or doc.get("short_description", "")),
            versions=tuple(versions),
            catalog=source,
        )
    ]


def parse_catalog(doc: Any, *, source: str) -> list[Appliance]:
    """Either format, told apart by its keys."""
    if not isinstance(doc, dict):
        raise _bad(source, "not a JSON object")
    if "vmlog_catalog" in doc:
        return parse_vmlog_catalog(doc, source=source)
    if "versions" in doc and "name" in doc:
        return parse_vagrant_metadata(doc, source=source)
    raise _bad(source, "neither a vmlog catalog nor Vagrant box metadata")


def load_document(location: str, *, insecure: bool = False) -> Any:
    """Read a catalog from an https:// URL (or local http) or a local file, at most 4 MiB."""
    if "://" in location:
        check_url(location, insecure=insecure)
        data = fetch_small(location, insecure=insecure, limit=MAX_CATALOG_BYTES)
    else:
        path = Path(location).expanduser()
        if not path.is_file():
            raise NotFound(f"catalog file {path} does not exist")
        if path.stat().st_size > MAX_CATALOG_BYTES:
            raise InvalidInput(f"catalog file {path} is larger than {MAX_CATALOG_BYTES} bytes")
        data = path.read_bytes()
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"catalog {location} is not valid JSON: {exc}", fix="check the URL or file") from exc


# -- the user's catalogs -----------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    location: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "location": self.location}


class Catalogs:
    """The catalogs a user added (recorded in the config dir) plus the built-in appliances."""

    def __init__(self, config_dir: Path, *, insecure: bool = False) -> None:
        self.config_dir = Path(config_dir)
        self.insecure = insecure
        self.problems: list[str] = []  # catalogs that could not be read, for the CLI to warn about

    @property
    def file(self) -> Path:
        return self.config_dir / CATALOG_FILE

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.file.read_text())
        except FileNotFoundError:
            return {"catalogs": []}
        except json.JSONDecodeError as exc:
            raise VmlogError(f"{self.file} is corrupt: {exc}", fix=f"fix or delete {self.file}") from exc

    def _write(self, data: dict[str, Any]) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.file, json.dumps(data, indent=2) + "\n")

    def entries(self) -> list[CatalogEntry]:
        return [CatalogEntry(e["name"], e["location"]) for e in self._read().get("catalogs", [])]

    def add(self, location: str, *, name: str | None = None) -> CatalogEntry:
        """Read the catalog once to check it, then record it under ``name``."""
        if "://" not in location:
            location = str(Path(location).expanduser().resolve())
        appliances = parse_catalog(load_document(location, insecure=self.insecure), source=location)
        if name is None:
            base = appliances[0].name if len(appliances) == 1 else Path(location.rstrip("/")).stem
            name = store_name(base)
        if not _SAFE.match(name):
            raise InvalidInput(f"invalid catalog name {name!r}", fix="use letters, digits, '.', '_', '-'")
        data = self._read()
        if any(e["name"] == name for e in data.get("catalogs", [])):
            raise AlreadyExists(f"a catalog named {name!r} exists", fix=f"`vml catalog rm {name}` or pass --name")
        data.setdefault("catalogs", []).append({"name": name, "location": location})
        self._write(data)
        return CatalogEntry(name, location)

    def remove(self, name: str) -> None:
        data = self._read()
        kept = [e for e in data.get("catalogs", []) if e["name"] != name]
        if len(kept) == len(data.get("catalogs", [])):
            raise NotFound(f"no catalog named {name!r}", fix="see `vml catalog list`")
        data["catalogs"] = kept
        self._write(data)

    def appliances(self) -> list[Appliance]:
        """Built-ins first, then every readable catalog; unreadable ones go to ``problems``."""
        from vmlog.appliances.builtin import builtin_appliances

        found: dict[str, Appliance] = {a.name: a for a in builtin_appliances(self.config_dir, insecure=self.insecure)}
        self.problems = []
        for entry in self.entries():
            try:
                doc = load_document(entry.location, insecure=self.insecure)
                for appliance in parse_catalog(doc, source=entry.name):
                    found[appliance.name] = appliance  # a user's catalog may serve vmlog-test
            except VmlogError as exc:
                self.problems.append(f"catalog {entry.name}: {exc.message}")
        return sorted(found.values(), key=lambda a: a.name)

    def get(self, name: str) -> Appliance:
        for appliance in self.appliances():
            if appliance.name == name:
                return appliance
        raise NotFound(f"no appliance named {name!r} in any catalog", fix="see `vml appliance list`")

    def search(self, text: str) -> list[Appliance]:
        needle = text.lower()
        return [
            a
            for a in self.appliances()
            if needle in a.name.lower() or needle in a.title.lower() or needle in a.description.lower()
        ]


def setting(config_dir: Path, key: str, env: str) -> str | None:
    """A catalog setting: the environment wins, then ``settings`` in catalogs.json."""
    if os.environ.get(env):
        return os.environ[env]
    try:
        return json.loads((Path(config_dir) / CATALOG_FILE).read_text()).get("settings", {}).get(key)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
