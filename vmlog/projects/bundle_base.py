"""The base appliance a bundle's disks sit on: found in the image store, given as a file, or rebuilt from its source.

A base that vmlog took out of a download (a Vagrant box's disk, a converted image) is not served
by any URL as it is: the manifest's ``base.provenance`` names the artefact and the steps, and
:func:`rebuild_base` redoes and verifies them. A base that was a local file of the
sender's can only come from the user (``--base FILE``); the error says exactly which file.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypervisors import qemu_img
from hypervisors.errors import HypervisorError
from vmlog.appliances import download
from vmlog.appliances.box import extract_box
from vmlog.bundles import BundleRejected
from vmlog.errors import IntegrityError, InvalidInput, NotFound
from vmlog.projects.driver import Progress
from vmlog.projects.model import Project
from vmlog.store import provenance as prov
from vmlog.store.images import ImageStore, StoredImage
from vmlog.store.model import qemu_format

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


def _store_name(value: Any, default: str) -> str:
    return value if isinstance(value, str) and _SAFE_PART.match(value) else default


def missing_base_file(base: dict[str, Any]) -> NotFound:
    """The error for a base that only the sender has: which file, by name, size and sha256."""
    name = f"{base.get('name') or '?'} {base.get('version') or ''}".strip()
    return NotFound(
        f"the bundle sits on a local base image of the sender's ({name}, {base.get('size')} bytes, sha256"
        f" {base['sha256']}), which is not in the image store and has no URL to download it from",
        fix="get that image file from the sender, then import again with `--base FILE`"
        " (vmlog checks its sha256 before using it)",
    )


def _from_file(images: ImageStore, base: dict[str, Any], base_file: Path) -> StoredImage:
    """The user's copy of the base, added to the store only if its sha256 is the manifest's."""
    try:
        return images.add_file(
            Path(base_file), name=_store_name(base.get("name"), "imported-base"),
            version=_store_name(base.get("version"), "unknown"), format=base["format"],
            expected_sha256=base["sha256"],
        )
    except IntegrityError as exc:
        raise BundleRejected(
            "base-digest", f"{base_file} is not the bundle's base: {exc.message}",
            fix="give the file the sender's bundle was made on (`--base FILE`)",
        ) from exc


def _download(
    images: ImageStore, downloads: Path, base: dict[str, Any], *, insecure: bool, progress: Progress
) -> StoredImage:
    total = base.get("size") or None

    def report(done: int, size: int | None) -> None:
        size = size or total
        progress(f"downloading the base ({done / 1e6:.0f} MB)", done / size if size else None)

    return download.fetch(
        list(base["urls"]), images,
        name=_store_name(base.get("name"), "imported-base"), version=_store_name(base.get("version"), "unknown"),
        format=base["format"], digest=("sha256", base["sha256"]), size=base.get("size"),
        insecure=insecure, progress=report, downloads=downloads,
    )


def _provenance_of(base: dict[str, Any]) -> prov.Provenance | None:
    if base.get("provenance") is None:
        return None
    try:
        record = prov.from_manifest(base["provenance"])
    except prov.ProvenanceError as exc:
        raise BundleRejected("manifest", f"malformed manifest: {exc}") from exc
    if record.disk_sha256 != base["sha256"]:
        raise BundleRejected("manifest", "malformed manifest: base.provenance names another disk than base.sha256")
    return record


def ensure_base(
    images: ImageStore, downloads: Path, base: dict[str, Any], *, insecure: bool, progress: Progress,
    base_file: Path | None = None,
) -> tuple[StoredImage, bool]:
    """The base from the store, from ``base_file``, rebuilt from its recorded source, or downloaded by its sha256."""
    image = images.find(base["sha256"])
    downloaded = False
    record = _provenance_of(base)
    if image is None and base_file is not None:
        image = _from_file(images, base, base_file)
    elif image is None:
        if record is not None and record.steps:
            if record.is_local_file:
                raise missing_base_file(base)
            image = rebuild_base(images, downloads, base, record, insecure=insecure, progress=progress)
        elif base.get("urls"):
            image = _download(images, downloads, base, insecure=insecure, progress=progress)
        else:
            raise missing_base_file(base)
        downloaded = True
    if image.qemu_format != base["format"]:
        raise InvalidInput(
            f"the store holds the base as {image.format}, the bundle needs {base['format']}",
            fix="ask the sender for a bundle made on the base as published",
        )
    if image.qemu_format != "raw":
        _check_standalone(image.path, image.qemu_format)
    if record is not None and prov.load(images.root, image.sha256) is None:
        prov.record(images.root, record)  # so a bundle made here names the same source
    return image, downloaded


def _redo_step(step: dict[str, str], current: Path, current_format: str, work: Path, n: int) -> tuple[Path, str]:
    """One recorded step on the verified artefact (or the previous step's output), in ``work``."""
    out_dir = work / f"step-{n}"
    out_dir.mkdir()
    if step["op"] == prov.STEP_BOX_MEMBER:
        disk, fmt, _meta = extract_box(current, step["provider"], out_dir)
        return disk, fmt
    fmt = step["format"]
    out = out_dir / f"disk.{fmt}"
    try:
        qemu_img.run(
            ["convert", "-q", "-f", qemu_format(current_format), "-O", fmt, str(current), str(out)], limits=True
        )
    except HypervisorError as exc:
        raise IntegrityError(f"the base's source could not be converted to {fmt}: {exc.message}") from exc
    return out, fmt


def rebuild_base(
    images: ImageStore, downloads: Path, base: dict[str, Any], record: prov.Provenance, *, insecure: bool,
    progress: Progress,
) -> StoredImage:
    """Download the recorded artefact (checked by its own digest and size), redo each step, check the disk's sha256.

    The result enters the store only through ``add_file`` with the manifest's sha256 expected, so
    a wrong artefact, step or disk leaves the store as it was; the artefact itself is dropped.
    """
    progress(f"downloading {record.artefact_name}, which the base comes from", None)
    artefact = download.fetch(
        list(record.urls), images, name=_store_name(base.get("name"), "imported-base") + "-source",
        version=_store_name(base.get("version"), "unknown"), format=record.artefact_format,
        digest=record.artefact_digest,
        size=record.artefact_size, insecure=insecure, downloads=downloads,
    )
    work = images.staging_dir("rebuild")  # swept by the store once this process is gone
    try:
        current, fmt = artefact.path, artefact.format
        for n, step in enumerate(record.steps):
            progress(f"redoing step {n + 1} of {len(record.steps)} ({step['op']})", None)
            current, fmt = _redo_step(step, current, fmt, work, n)
        if qemu_format(fmt) != base["format"]:
            raise BundleRejected(
                "base-format", f"the recorded steps give a {fmt} disk, the bundle needs {base['format']}"
            )
        return _from_file(images, base, current)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if artefact.sha256 != base["sha256"] and not images.refs(artefact.sha256):
            images.remove(artefact.sha256)
