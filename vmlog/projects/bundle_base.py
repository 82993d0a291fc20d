"""The base appliance a bundle's disks sit on: found in the image store, or downloaded and checked."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypervisors import qemu_img
from hypervisors.errors import HypervisorError
from vmlog.appliances import download
from vmlog.bundles import BundleRejected
from vmlog.errors import IntegrityError, InvalidInput, NotFound
from vmlog.projects.driver import Progress
from vmlog.projects.model import Project
from vmlog.store.images import ImageStore, StoredImage

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def base_of(images: ImageStore, project: Project, labels: Sequence[str]) -> StoredImage:
    """The one store image every exported disk's chain starts from."""
    shas = set()
    for label in labels:
        root = project.roots[label]
        if root.image_sha256 is None:
            raise InvalidInput(
                f"disk {label!r} of project {project.name!r} does not start from a base appliance (a blank"
                " scratch disk); bundles carry disks that sit on the shared base only",
                fix="copy the scratch disk's data to the system disk, or share it another way",
            )
        shas.add(root.image_sha256)
    if len(shas) != 1:
        raise InvalidInput(
            f"the disks of {project.name!r} sit on different base images; a bundle has one base"
        )
    sha = shas.pop()
    image = images.find(sha)
    if image is None:
        raise NotFound(
            f"the base image {sha[:16]}… of {project.name!r} is missing from the store", fix="vml doctor"
        )
    return image


def _check_standalone(path: Path, fmt: str) -> None:
    """A downloaded base must not point at other files (a hostile qcow2 naming /etc/shadow as backing)."""
    try:
        details = qemu_img.info(path, fmt, limits=True)
    except HypervisorError as exc:
        raise IntegrityError(f"the downloaded base is not a valid {fmt} image: {exc.message}") from exc
    specific = details.get("format-specific", {}).get("data", {})
    if details.get("backing-filename") or specific.get("data-file"):
        raise BundleRejected(
            "backing", "the bundle's base image refers to another file (backing or data file)"
        )


def ensure_base(
    images: ImageStore, downloads: Path, base: dict[str, Any], *, insecure: bool, progress: Progress
) -> tuple[StoredImage, bool]:
    """The base from the store, or downloaded from the manifest's URLs and verified by its sha256."""
    image = images.find(base["sha256"])
    downloaded = False
    if image is None:
        urls = list(base.get("urls") or [])
        name = str(base.get("name") or "")
        version = str(base.get("version") or "")
        if not urls:
            raise NotFound(
                f"the bundle needs base appliance {name or '?'} {version} (sha256 {base['sha256'][:16]}…),"
                " which is not in the image store, and names no URL to download it from",
                fix="pull that appliance first (vml appliance pull NAME), then import again",
            )
        total = base.get("size") or None

        def report(done: int, size: int | None) -> None:
            size = size or total
            progress(f"downloading the base ({done / 1e6:.0f} MB)", done / size if size else None)

        image = download.fetch(
            urls,
            images,
            name=name if _SAFE_PART.match(name) else "imported-base",
            version=version if _SAFE_PART.match(version) else "unknown",
            format=base["format"],
            digest=("sha256", base["sha256"]),
            size=base.get("size"),
            insecure=insecure,
            progress=report,
            downloads=downloads,
        )
        downloaded = True
    if image.qemu_format != base["format"]:
        raise InvalidInput(
            f"the store holds the base as {image.format}, the bundle needs {base['format']}",
            fix="ask the sender for a bundle made on the base as published",
        )
    if image.qemu_format != "raw":
        _check_standalone(image.path, image.qemu_format)
    return image, downloaded
