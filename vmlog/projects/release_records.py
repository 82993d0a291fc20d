"""A project's record of its mounted releases (``releases.json``), a state's copy, and the VM shares they make.

Each release is pinned to an exact revision; the VM sees a shared one as a ``rel-*`` shared folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypervisors.spec import VMSpec
from vmlog import fsutil
from vmlog.errors import InvalidInput
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles
from vmlog.releases.guest_share import DEFAULT_GUEST_ROOT, share_tag
from vmlog.releases.model import Release

RELEASES_FILE = "releases.json"
SHARE_PREFIX = "rel-"
GUEST = ("share", "cvmfs")


@dataclass(frozen=True)
class ProjectRelease:
    """One release of a project, pinned; what ``releases.json`` and a state's ``release_mounts`` hold.

    ``to_dict`` is a superset of :meth:`MountHandle.pinned`, so :func:`mounts.remount_pinned` takes it.
    """

    name: str
    release: Release
    source: dict[str, Any]
    guest: str = "share"  # "share" (host mount shown to the guest) or "cvmfs" (the guest's own client)
    guest_path: str = ""

    def __post_init__(self) -> None:
        if self.guest not in GUEST:
            raise InvalidInput(f"unknown release guest kind {self.guest!r}", fix="use share or cvmfs")
        if not self.guest_path:
            object.__setattr__(self, "guest_path", default_guest_path(self.guest, self.release, self.source))

    @property
    def tag(self) -> str:
        return share_tag(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "release": self.release.to_dict(),
            "source": dict(self.source),
            "guest": self.guest,
            "guest_path": self.guest_path,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectRelease:
        """Read a record (a state's may come from a bundle: anything malformed is ``InvalidInput``)."""
        try:
            release = Release.from_dict(data["release"])
            source = data["source"]
            if not isinstance(source, dict) or not isinstance(data["name"], str):
                raise TypeError("bad types")
            return cls(
                name=data["name"],
                release=release,
                source=dict(source),
                guest=str(data.get("guest") or "share"),
                guest_path=str(data.get("guest_path") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"a release mount record is malformed: {exc}") from exc

    def describe(self) -> str:
        tag = f" ({self.release.tag})" if self.release.tag else ""
        return f"{self.name} revision {self.release.revision}{tag} pin {self.release.pin[:16]}"


def default_guest_path(guest: str, release: Release, source: dict[str, Any]) -> str:
    if guest == "cvmfs":
        repository = str(source.get("url", "")).rstrip("/").rsplit("/", 1)[-1]
        return f"/cvmfs/{repository}/{release.path}".rstrip("/")
    return f"{DEFAULT_GUEST_ROOT}/{release.name}"


def public_source(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config)  # a source's config holds URLs, a pattern, a proxy and a public key: nothing secret


@dataclass
class ReleaseOutcome:
    """What mounting, unmounting or restoring releases did, for the CLI and the GUI to say."""

    releases: list[ProjectRelease] = field(default_factory=list)
    # "mounted" (checked in the guest), "attached" (in the VM, not mounted there), "next boot", "seed", "unmounted", ""
    guest: str = ""
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "releases": [r.to_dict() for r in self.releases],
            "guest": self.guest,
            "messages": list(self.messages),
            "warnings": list(self.warnings),
        }


def project_releases(files: ProjectFiles) -> list[ProjectRelease]:
    path = files.root / RELEASES_FILE
    if not path.is_file():
        return []
    return [ProjectRelease.from_dict(item) for item in fsutil.read_json(path)]


def write_project_releases(files: ProjectFiles, items: list[ProjectRelease]) -> None:
    fsutil.atomic_write_json(files.root / RELEASES_FILE, [item.to_dict() for item in items])


def state_releases(state: State) -> list[ProjectRelease]:
    """The releases a state recorded (records that cannot be read are skipped: they came from a bundle)."""
    return releases_of_records(state.release_mounts)


def releases_of_records(records: object) -> list[ProjectRelease]:
    """The readable releases among ``release_mounts`` records (a state's, or a bundle's untrusted ones)."""
    found: list[ProjectRelease] = []
    for item in records if isinstance(records, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            found.append(ProjectRelease.from_dict(item))
        except InvalidInput:
            continue
    return found


def record_in_state(files: ProjectFiles, state: State) -> State:
    """The just-saved ``state`` with the project's mounted releases (exact revisions) recorded in it."""
    items = project_releases(files)
    if not items:
        return state
    recorded = replace(state, release_mounts=[item.to_dict() for item in items])
    files.rewrite_state(recorded)
    return recorded


def with_release_shares(spec: dict[str, Any], items: list[ProjectRelease], mountpoints: dict[str, Path]) -> dict:
    """``spec`` (a VMSpec dict) whose ``rel-*`` shared folders are exactly those of ``items``' shares."""
    kept = [f for f in spec.get("shared_folders") or [] if not str(f.get("tag", "")).startswith(SHARE_PREFIX)]
    shares = [
        {"tag": item.tag, "host_path": str(mountpoints[item.name]), "readonly": True}
        for item in items
        if item.guest == "share" and item.name in mountpoints
    ]
    return {**spec, "shared_folders": kept + shares}


def shares_memory_block(project: Project) -> bool:
    """True if the project's VM has virtiofs shares, whose memory QEMU 7.2 cannot save (libvirt)."""
    return project.backend == "kvm" and bool(VMSpec.from_dict(project.spec).shared_folders)


def refuse_memory_save(project: Project, what: str) -> None:
    """``InvalidInput`` with the fix if ``what`` (suspend, a memory state) needs memory a share blocks."""
    if not shares_memory_block(project):
        return
    names = [f.tag for f in VMSpec.from_dict(project.spec).shared_folders]
    released = [t[len(SHARE_PREFIX) :] for t in names if t.startswith(SHARE_PREFIX)]
    fix = (
        f"unmount the releases first (`vml release umount {released[0]} --project {project.name}`), "
        f"or shut the VM down with `vml down {project.name}`"
        if released
        else f"shut the VM down with `vml down {project.name}`"
    )
    raise InvalidInput(
        f"cannot {what} {project.name!r}: QEMU cannot save the memory of a VM with virtiofs shared folders"
        f" ({', '.join(names)})",
        fix=fix,
    )
