"""Pulling an appliance: pick an image for the backend, download and verify it, convert it once.

Vagrant boxes are downloaded and verified as a whole, then their disk is taken out and stored on
its own (the box itself is dropped). The backend's disk format comes from the store's conversion
cache, so each format is made once per image.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from vmlog import paths
from vmlog.appliances.box import extract_box
from vmlog.appliances.builtin import published_sha256
from vmlog.appliances.download import DEFAULT_TIMEOUT, Progress, fetch, record_alias
from vmlog.appliances.model import Appliance, ApplianceVersion, ImageSource, store_name
from vmlog.errors import InvalidInput, NotFound
from vmlog.store.images import ImageStore, StoredImage

# What to download first for each backend disk format: native images, then anything convertible.
PREFERENCES = {
    "qcow2": ("qcow2", "hdd", "raw", "img", "box/libvirt", "vmdk", "vdi", "iso"),
    "vdi": ("vdi", "hdd", "raw", "img", "qcow2", "box/virtualbox", "vmdk", "iso"),
    "vmdk": ("vmdk", "hdd", "raw", "img", "box/vmware_desktop", "box/virtualbox", "qcow2", "vdi", "iso"),
    "raw": ("raw", "hdd", "img", "qcow2", "vmdk", "vdi", "box/libvirt", "iso"),
}


@dataclass(frozen=True)
class PulledAppliance:
    appliance: str
    version: ApplianceVersion
    image: StoredImage  # the verified image in the store
    disk: Path  # the image in the backend's disk format (the ISO itself for CD-ROM appliances)
    disk_format: str

    def to_dict(self) -> dict:
        return {
            "appliance": self.appliance,
            "version": self.version.version,
            "image": self.image.to_dict(),
            "disk": str(self.disk),
            "disk_format": self.disk_format,
            "context": self.version.context,
            "min_memory_mib": self.version.min_memory_mib,
            "scratch_disk_gib": self.version.scratch_disk_gib,
        }


def choose_image(version: ApplianceVersion, *, fmt: str | None = None, disk_format: str = "qcow2") -> ImageSource:
    if fmt is not None:
        matches = [src for key, src in version.images.items() if key == fmt or src.format == fmt]
        if not matches:
            raise NotFound(
                f"version {version.version} has no {fmt} image", fix=f"choose one of: {', '.join(version.images)}"
            )
        return matches[0]
    for key in PREFERENCES.get(disk_format, PREFERENCES["qcow2"]):
        if key in version.images:
            return version.images[key]
    raise NotFound(
        f"version {version.version} has no image usable as {disk_format}",
        fix=f"pick one with --format ({', '.join(version.images) or 'none offered'})",
    )


def pull(
    appliance: Appliance,
    store: ImageStore,
    *,
    version: str | None = None,
    fmt: str | None = None,
    disk_format: str = "qcow2",
    insecure: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    downloads: Path | None = None,
    build_cache: Path | None = None,
) -> PulledAppliance:
    """Make ``appliance`` available locally: verified in the store, converted for the backend."""
    resolved = appliance.resolve(version)
    source = choose_image(resolved, fmt=fmt, disk_format=disk_format)
    name = store_name(appliance.name)
    if appliance.local_builder and not source.urls:
        image = _build_locally(store, name, resolved, build_cache)
    else:
        digest = source.digest
        if digest is None:
            if not source.digest_url:
                raise InvalidInput(
                    f"{appliance.name} {resolved.version}: the catalog gives no sha256/sha512 for the {source.format}",
                    fix="vmlog only installs images it can verify; ask the catalog to publish a sha256",
                )
            digest = ("sha256", published_sha256(source.digest_url, insecure=insecure))
        image = fetch(
            source.urls,
            store,
            name=name,
            version=resolved.version,
            format=source.format,
            digest=digest,
            size=source.size,
            arch=source.arch,
            insecure=insecure,
            progress=progress,
            cancel=cancel,
            timeout=timeout,
            downloads=downloads,
        )
        if image.format == "box":
            image = _unbox(store, image, source, name, resolved.version)
            record_alias(store, digest, image.sha256)
    if image.format == "iso":
        return PulledAppliance(appliance.name, resolved, image, image.path, "iso")
    if image.format == "ova":
        return PulledAppliance(appliance.name, resolved, image, image.path, "ova")
    disk = store.converted(image.sha256, disk_format)
    return PulledAppliance(appliance.name, resolved, image, disk, disk_format)


def _build_locally(store: ImageStore, name: str, version: ApplianceVersion, cache: Path | None) -> StoredImage:
    from vmlog.testappliance.build import appliance_metadata, build_test_appliance

    cache = cache or paths.home().cache / "testappliance"
    cache.mkdir(parents=True, exist_ok=True)
    raw = build_test_appliance(cache)
    meta = appliance_metadata(raw)
    return store.add_file(
        raw, name=name, version=str(meta.get("version", version.version)), format="raw", arch=meta.get("arch", "x86_64")
    )


def _unbox(store: ImageStore, box: StoredImage, source: ImageSource, name: str, version: str) -> StoredImage:
    """Store the box's disk as the appliance image; the verified box is then dropped if unused."""
    work = store.root / ".staging" / f"unbox-{secrets.token_hex(6)}"
    work.mkdir(parents=True)
    try:
        disk, disk_fmt, _meta = extract_box(box.path, source.box_provider or "libvirt", work)
        image = store.add_file(
            disk, name=name, version=version, format=disk_fmt, urls=box.urls, arch=box.arch, move=True
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not store.refs(box.sha256):  # also when its disk was refused: a refused box leaves no store entry
            store.remove(box.sha256)
    return image
