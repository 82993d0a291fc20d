"""Reading catalogs: vmlog's JSON catalog format and Vagrant box metadata, from a URL or a file.

Everything in a catalog is checked as it is read, so an appliance that parses is one vmlog can
pull. The format is documented in ``docs/catalog-format.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmlog import safejson
from vmlog.appliances.digest import DIGEST_ALGOS
from vmlog.appliances.http_get import check_url, fetch_small
from vmlog.appliances.model import VAGRANT_ARCHES, Appliance, ApplianceVersion, ImageSource, host_arch
from vmlog.errors import InvalidInput, NotFound

CATALOG_FORMAT = 1
MAX_CATALOG_BYTES = 4 << 20
IMAGE_FORMATS = ("qcow2", "raw", "hdd", "img", "iso", "vmdk", "vdi", "ova", "box")
CONTEXT_KINDS = ("nocloud", "cernvm", "none")
VAGRANT_PROVIDERS = ("libvirt", "virtualbox", "vmware_desktop")
# Provider names in Vagrant metadata -> the box layout vmlog reads (Vagrant's VMware plugin answers to all three).
VAGRANT_PROVIDER_NAMES = {"libvirt": "libvirt", "virtualbox": "virtualbox", "vmware_desktop": "vmware_desktop",
                          "vmware_fusion": "vmware_desktop", "vmware_workstation": "vmware_desktop"}  # fmt: skip
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
VAGRANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$")
# RubyGems' version pattern (what ``Gem::Version.new`` accepts, hence what Vagrant metadata may use).
GEM_VERSION = re.compile(
    r"^[0-9]+(\.[0-9A-Za-z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)


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
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise _bad(source, f"invalid appliance name {name!r}")
        versions = [_vmlog_version(source, name, ver) for ver in entry.get("versions", [])]
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


def _vmlog_version(source: str, name: str, ver: Mapping[str, Any]) -> ApplianceVersion:
    version = str(ver.get("version", ""))
    if not SAFE_NAME.match(version):
        raise _bad(source, f"{name}: invalid version {version!r}")
    context = ver.get("context", "nocloud")
    if context not in CONTEXT_KINDS:
        raise _bad(source, f"{name} {version}: context must be one of {CONTEXT_KINDS}")
    images = _vmlog_images(source, name, version, ver)
    return ApplianceVersion(
        version=version,
        images=images,
        min_memory_mib=_int(source, ver, "min_memory_mib", 512) or 512,
        min_disk_gib=_int(source, ver, "min_disk_gib", 0) or 0,
        scratch_disk_gib=_int(source, ver, "scratch_disk_gib", 0) or 0,
        context=context,
        boot=dict(ver.get("boot") or {}),
    )


def _vmlog_images(source: str, name: str, version: str, ver: Mapping[str, Any]) -> dict[str, ImageSource]:
    """One version's images, keyed by format (``box/<provider>`` for Vagrant boxes)."""
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
    return images


def parse_vagrant_metadata(doc: Mapping[str, Any], *, source: str, arch: str | None = None) -> list[Appliance]:
    """Read Vagrant box catalog metadata: one box name, versions, one ``.box`` per provider and architecture.

    The appliance keeps the name Vagrant users type (``hashicorp/bionic64``); its images are stored as
    ``hashicorp-bionic64``. Each provider's box for this machine is chosen as Vagrant chooses it
    (``arch`` overrides the host's architecture); boxes for other architectures stay listed under
    ``box/<provider>@<arch>`` and are never picked on their own. Versions order as RubyGems orders
    them, as Vagrant does (``1.0.0.beta1`` before ``1.0.0``).
    """
    tag = doc.get("tag")
    name = tag if isinstance(tag, str) and "/" in tag else doc.get("name")
    if not isinstance(name, str) or not VAGRANT_NAME.match(name):
        raise _bad(source, f"Vagrant metadata without a valid box name ({str(name)[:60]!r})")
    host = arch or host_arch()
    versions = []
    for ver in doc.get("versions", []):
        if not isinstance(ver, dict) or ver.get("status", "active") != "active":
            continue  # unreleased or revoked versions are not offered, as on Vagrant Cloud
        version = str(ver.get("version", ""))
        if not SAFE_NAME.match(version) or not GEM_VERSION.match(version):
            raise _bad(source, f"{name}: invalid version {version!r}")
        images = _vagrant_images(ver.get("providers") or [], host)
        versions.append(ApplianceVersion(version=version, images=images, context="none"))
    return [
        Appliance(
            name=name,
            title=name,
            description=str(doc.get("description", "") or doc.get("short_description", "") or ""),
            versions=tuple(versions),
            catalog=source,
            version_order="rubygems",
        )
    ]


def _vagrant_images(providers: list[Any], host: str) -> dict[str, ImageSource]:
    """``box/<provider>`` for the box Vagrant would take on a ``host`` machine, ``box/<provider>@<arch>`` else."""
    by_provider: dict[str, list[Mapping[str, Any]]] = {}
    for entry in providers:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        provider = VAGRANT_PROVIDER_NAMES.get(str(entry.get("name", "")))
        if provider is not None:  # providers vmlog cannot use (docker, hyperv, ...) are skipped
            by_provider.setdefault(provider, []).append(entry)
    images: dict[str, ImageSource] = {}
    for provider, entries in by_provider.items():
        chosen = _vagrant_choice(entries, host)
        for entry in entries:
            label = VAGRANT_ARCHES.get(str(entry.get("architecture") or "unknown"), "unknown")
            algo = str(entry.get("checksum_type", "")).lower()
            checksum = entry.get("checksum")
            digest = (algo, str(checksum).lower()) if algo in DIGEST_ALGOS and checksum else None
            source = ImageSource(format="box", urls=(entry["url"],), digest=digest, arch=label,
                                 box_provider=provider, for_host=entry is chosen)  # fmt: skip
            images.setdefault(f"box/{provider}" if entry is chosen else f"box/{provider}@{label}", source)
    return images


def _vagrant_choice(entries: list[Mapping[str, Any]], host: str) -> Mapping[str, Any] | None:
    """Vagrant's choice among one provider's boxes (``BoxMetadata::Version#provider`` with ``:auto``):
    the host's architecture; else one of architecture ``unknown`` marked ``default_architecture``; else
    the only box, when the metadata carries no architecture information at all."""
    for entry in entries:
        if VAGRANT_ARCHES.get(str(entry.get("architecture"))) == host:
            return entry
    for entry in entries:
        if str(entry.get("architecture")) == "unknown" and entry.get("default_architecture"):
            return entry
    if len(entries) == 1 and entries[0].get("default_architecture") is None:
        return entries[0]
    return None


def parse_catalog(doc: Any, *, source: str) -> list[Appliance]:
    """Either format, told apart by its keys."""
    if not isinstance(doc, dict):
        raise _bad(source, "not a JSON object")
    if "vmlog_catalog" in doc:
        return parse_vmlog_catalog(doc, source=source)
    if "versions" in doc and ("name" in doc or "tag" in doc):
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
        return safejson.loads(data, what=f"catalog {location}", max_bytes=MAX_CATALOG_BYTES)
    except ValueError as exc:
        raise InvalidInput(f"catalog {location} is not valid JSON: {exc}", fix="check the URL or file") from exc
