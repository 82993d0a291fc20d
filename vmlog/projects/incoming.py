"""What every snapshot model does the same way when a bundle's state comes in: checks and the record's fields."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.manifest import created_seconds
from vmlog.errors import AlreadyExists, InvalidInput
from vmlog.projects.digest import layers_digest
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage

if TYPE_CHECKING:  # the bundle reader (tar, signatures) is imported by the imports and exports that use it
    from vmlog.bundles.reader import LocalReference, VerifiedBundle


def check_fits(project: Project, states: dict[str, State], bundle: VerifiedBundle, labels: list[str]) -> None:
    """Refuse a bundle whose state is here already or whose disks are not the project's ``labels``."""
    sid = bundle.state["id"]
    if sid in states:
        raise AlreadyExists(
            f"project {project.name!r} already has state {sid[:12]} (imported before?)",
            fix="restore it with `vml state restore`, or import into another project with --project",
        )
    if set(bundle.labels) != set(labels):
        raise InvalidInput(
            f"the bundle has disks {', '.join(sorted(bundle.labels))}, project {project.name!r} has"
            f" {', '.join(labels)}",
            fix="import into a new project (--project NEWNAME)",
        )


def check_base(project: Project, labels: list[str], image: StoredImage) -> None:
    """Refuse a project whose exchanged disks do not sit on the bundle's base."""
    if any(project.roots[label].image_sha256 != image.sha256 for label in labels):
        raise InvalidInput(
            f"project {project.name!r} does not sit on the bundle's base {image.name} {image.version}",
            fix="import into a new project (--project NEWNAME)",
        )


def check_since(files: ProjectFiles, project: Project, state: State, layers: dict[str, Path], expected: str) -> str:
    """The digest of the ``since`` state here; ``BundleRejected`` unless it is the sender's."""
    digest = layers_digest(files, project, layers)
    if digest != expected:
        raise BundleRejected(
            "since",
            f"state {state.label()} here differs from the sender's state it builds on",
            fix="ask the sender for a full bundle (without --since)",
        )
    return digest


def base_reference(image: StoredImage) -> LocalReference:
    from vmlog.bundles.reader import LocalReference

    return LocalReference(image.path, image.qemu_format, image.sha256)


def record_fields(bundle: VerifiedBundle, states: dict[str, State], describe: str) -> dict[str, Any]:
    """The imported state's name, message, author, creation time and release mounts, from the untrusted manifest.

    A name already taken here gets the state id's prefix appended; texts are cut to sane lengths.
    """
    sid = bundle.state["id"]
    wanted = bundle.state.get("name")
    name = wanted if isinstance(wanted, str) and wanted else None
    if name and any(s.name == name for s in states.values()):
        name = f"{name}-{sid[:8]}"
    created = bundle.state.get("created")
    mounts = bundle.state.get("release_mounts")
    return {
        "name": name,
        "message": str(bundle.state.get("message") or "")[:2000] or f"imported ({describe})",
        "author": str(bundle.state.get("author") or "unknown")[:200],
        "created": created_seconds(created) or 0.0,
        "release_mounts": [m for m in mounts if isinstance(m, dict)] if isinstance(mounts, list) else [],
    }
