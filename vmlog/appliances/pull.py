"""Pulling an appliance: pick an image for the backend, download and verify it, convert it once.

Vagrant boxes and OVAs are downloaded and verified as a whole, then their disks are taken out and
stored on their own (the package itself is dropped, also when taking the disks out fails). A disk's
format comes from its bytes, through the store's image gate, never from a name. The backend's disk
format comes from the store's conversion cache, so each format is made once per image. A local image
file (``vml project new NAME FILE``) enters the store the same way.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from vmlog import paths
from vmlog.appliances.box import BoxDisk, copy_sparse, unpack_box
from vmlog.appliances.builtin import published_sha256
from vmlog.appliances.download import DEFAULT_TIMEOUT, Progress, fetch, record_alias
from vmlog.appliances.model import Appliance, ApplianceVersion, ImageSource, store_name
from vmlog.appliances.ova import unpack_ova
from vmlog.appliances.ovf_disks import extent_member, make_whole, parse_descriptor
from vmlog.errors import IntegrityError, InvalidInput, NotFound
from vmlog.fsutil import atomic_write_text
from vmlog.store import provenance
from vmlog.store.image_gate import ARCHIVE_KINDS, DISK_FORMATS, detect_format, printable
from vmlog.store.images import ImageStore, StoredImage

# What to download first for each backend disk format: native images, then anything convertible
# (a VirtualBox- or VMware-only box or an OVA still gives a kvm disk, converted once).
PREFERENCES = {
    "qcow2": ("qcow2", "hdd", "raw", "img", "box/libvirt", "vmdk", "vdi", "ova", "box/virtualbox",
              "box/vmware_desktop", "iso"),
    "vdi": ("vdi", "hdd", "raw", "img", "qcow2", "box/virtualbox", "ova", "vmdk", "box/vmware_desktop",
            "box/libvirt", "iso"),
    "vmdk": ("vmdk", "hdd", "raw", "img", "box/vmware_desktop", "box/virtualbox", "ova", "qcow2", "vdi",
             "box/libvirt", "iso"),
    "raw": ("raw", "hdd", "img", "qcow2", "vmdk", "vdi", "box/libvirt", "ova", "box/virtualbox",
            "box/vmware_desktop", "iso"),
}  # fmt: skip
PACKAGE_FORMATS = ("box", "ova")


@dataclass(frozen=True)
class PulledAppliance:
    appliance: str
    version: ApplianceVersion
    image: StoredImage  # the verified image in the store (a package's system disk)
    disk: Path  # the image in the backend's disk format (the ISO itself for CD-ROM appliances)
    disk_format: str
    extra_disks: tuple[StoredImage, ...] = ()  # further disks of a package (vagrant-libvirt v2, OVA)
    obtained: str = ""  # how the disk came out of what was downloaded

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
            "extra_disks": [image.to_dict() for image in self.extra_disks],
            "obtained": self.obtained,
        }


@dataclass(frozen=True)
class StoredDisks:
    """The disks a package gave, stored: the system disk first, and how they were obtained."""

    images: tuple[StoredImage, ...]
    obtained: str
    details: dict[str, object] = field(default_factory=dict)


def choose_image(version: ApplianceVersion, *, fmt: str | None = None, disk_format: str = "qcow2") -> ImageSource:
    if fmt is not None:
        matches = [src for key, src in version.images.items() if key == fmt or (src.format == fmt and src.for_host)]
        if not matches:
            raise NotFound(
                f"version {version.version} has no {fmt} image", fix=f"choose one of: {', '.join(version.images)}"
            )
        return matches[0]
    for key in PREFERENCES.get(disk_format, PREFERENCES["qcow2"]):
        if key in version.images:
            return version.images[key]
    raise NotFound(
        f"version {version.version} has no image usable as {disk_format} on this machine",
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
    extra: tuple[StoredImage, ...] = ()
    obtained = f"downloaded {source.format}"
    if appliance.local_builder and not source.urls:
        image, obtained = _build_locally(store, name, resolved, build_cache), "built on this machine"
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
            source.urls, store, name=name, version=resolved.version, format=source.format, digest=digest,
            size=source.size, arch=source.arch, insecure=insecure, progress=progress, cancel=cancel,
            timeout=timeout, downloads=downloads,
        )  # fmt: skip
        if image.format in PACKAGE_FORMATS:
            stored = unpack_package(store, image, name, resolved.version, provider=source.box_provider)
            image, extra, obtained = stored.images[0], stored.images[1:], stored.obtained
            record_alias(store, digest, image.sha256)
            record_extra_disks(store, image, extra)
        else:
            extra = extra_disks_of(store, image)  # a package pulled before: its system disk came back
    record_version(store, image, name, resolved.version)
    if image.format == "iso":
        return PulledAppliance(appliance.name, resolved, image, image.path, "iso", extra, obtained)
    disk = store.converted(image.sha256, disk_format)
    return PulledAppliance(appliance.name, resolved, image, disk, disk_format, extra, obtained)


def _build_locally(store: ImageStore, name: str, version: ApplianceVersion, cache: Path | None) -> StoredImage:
    """The built-in appliances vmlog builds on this machine: the busybox test appliance, or the Debian guest."""
    from vmlog.testappliance import debian
    from vmlog.testappliance.build import appliance_metadata, build_test_appliance

    cache = cache or paths.home().cache / "testappliance"
    cache.mkdir(parents=True, exist_ok=True)
    if name == store_name(debian.APPLIANCE_NAME):
        raw = debian.build_debian_appliance(cache)
        meta = debian.debian_metadata(raw)
    else:
        raw = build_test_appliance(cache)
        meta = appliance_metadata(raw)
    return store.add_file(
        raw, name=name, version=str(meta.get("version", version.version)), format="raw", arch=meta.get("arch", "x86_64")
    )


def unpack_package(
    store: ImageStore, package: StoredImage, name: str, version: str, *, provider: str | None = None
) -> StoredDisks:
    """Store the disks of the box or OVA ``package`` (in the store); the package is then dropped if unused.

    A package whose disks cannot be taken out leaves nothing behind: neither itself nor a disk.
    """
    try:
        unpacked = unpack_file(store, package.path, package.format, name, version, urls=package.urls,
                               arch=package.arch, provider=provider)  # fmt: skip
        if package.format == "box":  # so that a bundle on this base names the box, which a colleague can fetch
            provenance.record_unboxed(store.root, unpacked.images[0], package, provider or "libvirt")
        return unpacked
    finally:
        if not store.refs(package.sha256):
            store.remove(package.sha256)


def unpack_file(
    store: ImageStore,
    path: Path,
    kind: str,
    name: str,
    version: str,
    *,
    urls: tuple[str, ...] = (),
    arch: str = "x86_64",
    provider: str | None = None,
) -> StoredDisks:
    """Take the disks out of the box or OVA file ``path`` and store them (system disk first)."""
    work = store.staging_dir("unpack")
    stored: list[StoredImage] = []
    try:
        if kind == "box":
            box = unpack_box(path, provider, work)
            disks, members, how = box.disks, box.members, f"unpacked a {box.provider} box: {box.layout}"
        else:
            ova = unpack_ova(path, work)
            disks, members = ova.disks, ova.members
            how = f"imported an OVF {ova.descriptor.version} package ({ova.manifest})"
        notes = []
        for index, disk in enumerate(disks):
            label = name if index == 0 else f"{name}-disk{index + 1}"
            image, note = _store_disk(store, disk, members, work, label, version, urls, arch)
            stored.append(image)
            notes.append(note)
    except BaseException:
        for image in stored:  # the disks stored before the one that failed
            if not store.refs(image.sha256):
                store.remove(image.sha256)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return StoredDisks(tuple(stored), f"{how}; " + "; ".join(notes), {"disks": [d.member for d in disks]})


def _store_disk(
    store: ImageStore, disk: BoxDisk, members: dict[str, Path], work: Path,
    name: str, version: str, urls: tuple[str, ...], arch: str,
) -> tuple[StoredImage, str]:  # fmt: skip
    path, fmt = disk.path, disk.format
    note = f"{printable(disk.member)} ({fmt})"
    if fmt == "vmdk-descriptor":
        count = len(parse_descriptor(path.read_bytes()).extents)
        path, fmt = make_whole(disk.member, members, work), "qcow2"
        note = f"{printable(disk.member)}: {count} VMDK extents joined into one qcow2"
    elif fmt not in DISK_FORMATS:
        raise IntegrityError(f"disk {printable(disk.member)} is {fmt}, not a disk image vmlog reads")
    image = store.add_file(path, name=name, version=version, format=fmt, urls=urls, arch=arch, move=True)
    return image, note


# -- local image files -----------------------------------------------------------------------------


def import_local_image(
    store: ImageStore, path: Path, *, name: str | None = None, version: str = "local"
) -> StoredDisks:
    """Store the image file ``path`` with the format its bytes show (an Ubuntu ``.img`` is qcow2).

    A ``.box`` or ``.ova`` gives its disks; a split VMDK descriptor is joined with its extents beside
    it; a compressed file is refused (decompress it first). The format is never taken from the name
    and qemu-img never probes the file: the store's image gate checks it in the detected format.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise NotFound(f"image file {path} does not exist")
    name = name or store_name(path.stem)
    kind = detect_format(path)
    if kind in ("ova", "tar") and path.suffix.lower() != ".box":
        return unpack_file(store, path, "ova", name, version, urls=())
    if kind in ("tar", "gzip", "bzip2", "xz") and path.suffix.lower() == ".box":
        return unpack_file(store, path, "box", name, version, urls=())
    if kind in ARCHIVE_KINDS:
        raise InvalidInput(
            f"{path.name} is a {kind} file, not a disk image",
            fix=f"decompress it first (e.g. `{_DECOMPRESS.get(kind, 'tar xf')} {path.name}`) and give the image",
        )
    if kind == "vmdk-descriptor":
        return _import_split_vmdk(store, path, name, version)
    image = store.add_file(path, name=name, version=version, format=kind)
    return StoredDisks((image,), f"local file {printable(path.name)} ({kind}, from its header)")


_DECOMPRESS = {"gzip": "gunzip", "xz": "unxz", "zstd": "unzstd", "bzip2": "bunzip2"}


def _import_split_vmdk(store: ImageStore, descriptor: Path, name: str, version: str) -> StoredDisks:
    """A local VMDK split into extents: copy the descriptor and the extents it names (beside it only)."""
    work = store.staging_dir("vmdk")
    try:
        members = {descriptor.name: work / "descriptor.vmdk"}
        shutil.copyfile(descriptor, members[descriptor.name])
        for index, extent in enumerate(parse_descriptor(descriptor.read_bytes()).extents):
            if extent.kind == "ZERO":
                continue
            member = extent_member(descriptor.name, extent.file_name)
            source = descriptor.parent / member
            if not source.is_file() or source.resolve().parent != descriptor.resolve().parent:
                raise IntegrityError(f"extent {printable(extent.file_name)} is not a file beside {descriptor.name}")
            members[member] = work / f"extent-{index:04d}.vmdk"
            with open(source, "rb") as src:
                copy_sparse(src, members[member], source.stat().st_size, f"extent {printable(member)}")
        whole = make_whole(descriptor.name, members, work)
        image = store.add_file(whole, name=name, version=version, format="qcow2", move=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return StoredDisks((image,), f"local split VMDK {printable(descriptor.name)} joined into one qcow2")


# -- versions sharing one image, packages of several disks -----------------------------------------


def record_extra_disks(store: ImageStore, image: StoredImage, extra: tuple[StoredImage, ...]) -> None:
    """Remember the further disks of the package whose system disk is ``image`` (for later pulls)."""
    if extra:
        folder = store.root / ".versions"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / f"{image.sha256}.disks.json", json.dumps([d.sha256 for d in extra]) + "\n")


def extra_disks_of(store: ImageStore, image: StoredImage) -> tuple[StoredImage, ...]:
    try:
        shas = json.loads((store.root / ".versions" / f"{image.sha256}.disks.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return ()
    found = [store.find(str(sha)) for sha in shas if isinstance(sha, str)]
    return tuple(d for d in found if d is not None)


def record_version(store: ImageStore, image: StoredImage, name: str, version: str) -> None:
    """Remember that ``name`` ``version`` is the store image ``image`` too.

    The store keeps one name and version per digest; two versions of an appliance with identical
    disks share one image, and this record keeps the second version known.
    """
    if (image.name, image.version) == (name, version):
        return
    labels = stored_labels(store, image.sha256)
    if [name, version] in labels:
        return
    folder = store.root / ".versions"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{image.sha256}.json", json.dumps([*labels, [name, version]]) + "\n")


def stored_labels(store: ImageStore, sha256: str) -> list[list[str]]:
    """The further ``[name, version]`` labels recorded for the store image ``sha256``."""
    try:
        labels = json.loads((store.root / ".versions" / f"{sha256}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [list(map(str, label)) for label in labels if isinstance(label, list) and len(label) == 2]


def stored_versions(store: ImageStore) -> set[tuple[str, str]]:
    """Every (name, version) the store holds, counting versions that share another version's image."""
    found = set()
    for image in store.list():
        found.add((image.name, image.version))
        found.update((label[0], label[1]) for label in stored_labels(store, image.sha256))
    return found


def find_stored(store: ImageStore, name: str, version: str) -> StoredImage | None:
    """The store image of ``name`` ``version``, also when it is recorded as sharing another version's image."""
    for image in store.list():
        if (image.name, image.version) == (name, version) or [name, version] in stored_labels(store, image.sha256):
            return image
    return None
