"""Appliances: the catalogs offering them, pulling one into the image store, the stored images, the backend to use.

``vml appliance``, ``vml catalog``, ``vml setup``, the demo and the GUI's Appliances page call these,
so a pull reports the same phases and a backend is chosen the same way everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.errors import BackendUnavailable
from vmlog.app.backend_names import typed_backend
from vmlog.app.doctor import diagnose
from vmlog.app.refusals import refusal_logged
from vmlog.appliances.catalog import CATALOG_FORMAT, Appliance, ApplianceVersion, CatalogEntry, Catalogs, store_name
from vmlog.appliances.catalog_cache import CACHE_DIR_NAME
from vmlog.appliances.pull import PulledAppliance, choose_image, pull, stored_versions
from vmlog.errors import InvalidInput
from vmlog.store.images import StoredImage
from vmlog.testappliance.build import APPLIANCE_NAME as TEST_APPLIANCE
from vmlog.testappliance.build import appliance_metadata, build_test_appliance
from vmlog.workspace import Workspace, workspace

__all__ = [
    "CATALOG_FORMAT",
    "TEST_APPLIANCE",
    "Appliance",
    "ApplianceVersion",
    "CatalogEntry",
    "PulledAppliance",
    "StoredImage",
    "store_name",
]

# Formats the kvm backend can put under a qcow2 overlay as they are (no conversion needed).
_DIRECT = {"raw": "raw", "hdd": "raw", "img": "raw", "qcow2": "qcow2"}
ByteProgress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class PullEvent:
    """One step of a pull: ``phase`` is download, verify or convert; ``done``/``total`` are bytes downloaded."""

    phase: str
    message: str
    done: int | None = None
    total: int | None = None


CATALOG_CACHE = CACHE_DIR_NAME


def _catalogs(ctx: Workspace, insecure: bool = False) -> Catalogs:
    return Catalogs(ctx.home.config, insecure=insecure, cache_dir=ctx.home.cache / CATALOG_CACHE)


# -- catalogs ----------------------------------------------------------------------------------


def list_catalogs(*, ctx: Workspace | None = None) -> list[CatalogEntry]:
    """The catalogs recorded in this home (the built-in appliances are always there besides)."""
    return _catalogs(workspace(ctx)).entries()


def add_catalog(location: str, *, name: str | None = None, insecure: bool = False,
                ctx: Workspace | None = None) -> CatalogEntry:  # fmt: skip
    """Read a catalog once to check it, then record it."""
    return _catalogs(workspace(ctx), insecure).add(location, name=name)


def remove_catalog(name: str, *, ctx: Workspace | None = None) -> None:
    """Forget a catalog (images already pulled stay in the store)."""
    _catalogs(workspace(ctx)).remove(name)


@dataclass(frozen=True)
class ApplianceRow:
    """One appliance of the catalogs and the versions of it already in the image store."""

    appliance: Appliance
    pulled: list[str]

    @property
    def stored(self) -> bool:
        return bool(self.pulled)

    def to_dict(self) -> dict[str, Any]:
        return {**self.appliance.summary(), "pulled": list(self.pulled)}


@dataclass(frozen=True)
class ApplianceListing:
    """Appliances of every readable catalog (built-ins first) and the catalogs that could not be read."""

    appliances: list[ApplianceRow]
    problems: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)  # catalogs listed from their kept copy, with its date

    def to_dict(self) -> list[dict[str, Any]]:
        return [row.to_dict() for row in self.appliances]


def list_appliances(search: str | None = None, *, ctx: Workspace | None = None) -> ApplianceListing:
    """Every appliance (or those whose name, title or description holds ``search``), never asking a server."""
    ctx = workspace(ctx)
    catalogs = _catalogs(ctx)
    found = catalogs.search(search) if search else catalogs.appliances()
    pulled = stored_versions(ctx.images)
    rows = [ApplianceRow(a, sorted(v for (n, v) in pulled if n == store_name(a.name))) for a in found]
    return ApplianceListing(rows, list(catalogs.problems), list(catalogs.notes))


@dataclass(frozen=True)
class FoundAppliance:
    """An appliance, the version asked for, and the catalogs that could not be read while looking."""

    appliance: Appliance
    version: ApplianceVersion
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.appliance.summary(), "resolved": self.version.to_dict()}


def find_appliance(name: str, version: str | None = None, *, insecure: bool = False,
                   ctx: Workspace | None = None) -> FoundAppliance:  # fmt: skip
    """Appliance ``name`` at ``version`` (latest if None); CernVM asks its server for the versions."""
    catalogs = _catalogs(workspace(ctx), insecure)
    appliance = catalogs.get(name)
    return FoundAppliance(appliance, appliance.resolve(version), list(catalogs.problems))


# -- pulling -------------------------------------------------------------------------------------


def pull_appliance(
    name: str,
    *,
    version: str | None = None,
    fmt: str | None = None,
    disk_format: str = "qcow2",
    insecure: bool = False,
    progress: ByteProgress | None = None,
    cancel: threading.Event | None = None,
    ctx: Workspace | None = None,
) -> PulledAppliance:
    """Download (or build), verify and convert appliance ``name``; an interrupted pull resumes."""
    ctx = workspace(ctx)
    appliance = _catalogs(ctx, insecure).get(name)
    with refusal_logged(ctx.logbook, None, "appliance pull", appliance=name, version=version):
        return pull(
            appliance, ctx.images, version=version, fmt=fmt, disk_format=disk_format, insecure=insecure,
            progress=progress, cancel=cancel, downloads=ctx.home.downloads,
            build_cache=ctx.home.cache / "testappliance",
        )  # fmt: skip


def pull_for_backend(
    found: FoundAppliance,
    backend: str,
    *,
    insecure: bool = False,
    progress: Callable[[PullEvent], None] = lambda _event: None,
    cancel: threading.Event | None = None,
    ctx: Workspace | None = None,
) -> PulledAppliance:
    """Pull the image of ``found`` that ``backend`` boots best, reporting download, verify and convert."""
    ctx = workspace(ctx)
    appliance, version = found.appliance, found.version
    native = registry.backend_class(backend).native_disk_format
    source = choose_image(version, disk_format=native)
    if source.format == "iso":
        raise InvalidInput(
            f"{appliance.name} {version.version} comes only as {source.format}, which setup cannot boot yet",
            fix="ask the catalog for a disk image (hdd, raw, qcow2, vmdk, vdi)",
        )
    # Use raw and qcow2 images as they are (a qcow2 overlay backs onto either); convert the others.
    disk_format = _DIRECT.get(source.format, native) if native == "qcow2" else native
    what = "building it on this machine" if appliance.local_builder and not source.urls else source.urls[0]
    progress(PullEvent("download", f"{appliance.name} {version.version} ({source.format}) from {what}"))

    def on_bytes(done: int, total: int | None) -> None:
        progress(PullEvent("download", f"{appliance.name} {version.version}", done, total or source.size))
        if total and done >= total:
            progress(PullEvent("verify", "checking the digest and storing the image"))

    pulled = pull(
        appliance, ctx.images, version=version.version,
        fmt=next(key for key, src in version.images.items() if src is source), disk_format=disk_format,
        insecure=insecure, progress=on_bytes, cancel=cancel, downloads=ctx.home.downloads,
        build_cache=ctx.home.cache / "testappliance",
    )  # fmt: skip
    algo = source.digest[0] if source.digest else "sha256"
    progress(PullEvent("verify", f"{algo} matches; stored as {pulled.image.sha256[:12]}"))
    if pulled.disk == pulled.image.path:
        progress(PullEvent("convert", f"not needed: the {pulled.image.format} image is used as it is"))
    else:
        progress(PullEvent("convert", f"converted to {pulled.disk_format}"))
    return pulled


def build_local_test_appliance(cache: Path, *, say: Callable[[str], None] = lambda _text: None) -> Path:
    """The test appliance's disk image, built on this machine (cached in ``cache`` after the first time)."""
    return build_test_appliance(cache, progress=say)


def appliance_image_facts(image: Path) -> dict[str, Any]:
    """Version, size, sha256 and memory need of a built test appliance image, for a catalog to offer it."""
    return appliance_metadata(image)


# -- images in the store -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRow:
    """An image in the store and the projects and states that use it."""

    image: StoredImage
    refs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.image.to_dict(), "refs": list(self.refs)}


def list_images(*, ctx: Workspace | None = None) -> list[ImageRow]:
    ctx = workspace(ctx)
    return [ImageRow(image, ctx.images.refs(image.sha256)) for image in ctx.images.list()]


def verify_images(ref: str | None = None, *, ctx: Workspace | None = None) -> Iterator[StoredImage]:
    """Re-hash image ``ref`` (all if None), yielding each that matches; ``IntegrityError`` on one that does not."""
    ctx = workspace(ctx)
    for image in [ctx.images.get(ref)] if ref else ctx.images.list():
        ctx.images.verify(image.sha256)
        yield image


def remove_image(ref: str, *, ctx: Workspace | None = None) -> StoredImage:
    """Delete an image from the store; refused while a project or state uses it."""
    ctx = workspace(ctx)
    image = ctx.images.get(ref)
    ctx.images.remove(image.sha256)
    return image


# -- backends ------------------------------------------------------------------------------------


def backend_choices() -> list[tuple[str, str]]:
    """(title, key) of every backend vmlog knows, whether or not it works on this machine."""
    return [(entry.title, key) for key, entry in registry.BACKENDS.items()]


def canonical_backend(name: str) -> str:
    """The registry's name for backend ``name`` (an alias such as libvirt gives kvm); ``InvalidInput`` else."""
    return typed_backend(name)


def choose_backend(requested: str | None, *, say: Callable[[str], None] = lambda _text: None) -> str:
    """The requested backend if it works here, else ``vml doctor``'s best usable one."""
    if requested:
        name = canonical_backend(requested)
        probe = registry.probe(name)
        if not probe.available:
            raise BackendUnavailable(
                f"the {name} backend does not work here: {probe.summary}", fix=probe.fix, backend=name
            )
        say(f"{name}: {probe.summary}")
        return name
    say("checking which hypervisors work here")
    report = diagnose()
    best = report.best_backend()
    if best is None:
        reasons = "; ".join(f"{p.backend}: {p.summary}" for p in report.backends)
        raise BackendUnavailable(f"no hypervisor works on this machine ({reasons})", fix="run `vml doctor`")
    probe = next(p for p in report.backends if p.backend == best)
    say(f"{best}: {probe.summary}")
    return best
