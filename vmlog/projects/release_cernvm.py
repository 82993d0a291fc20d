"""CernVM guests run their own CernVM-FS client: a project's releases become client files in its seed.

The client configuration of each ``cvmfs`` release, pinned to the revision's root catalog, goes into
the project's contextualisation seed and takes effect at the guest's next boot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from vmlog.context import project_setup
from vmlog.context.model import Context, ExtraFile
from vmlog.context.seed import write_seed
from vmlog.errors import InvalidInput, NotFound, VmlogError
from vmlog.projects.model import Project
from vmlog.projects.release_records import ProjectRelease
from vmlog.projects.store import ProjectFiles
from vmlog.releases.cvmfs_source import CvmfsSource
from vmlog.releases.guest_share import cvmfs_client_files
from vmlog.releases.sources import source_from_config


def cernvm_release_files(items: list[ProjectRelease], proxy: str | None) -> dict[str, str]:
    """CernVM-FS client files for the ``cvmfs`` releases, one pinned repository each."""
    files: dict[str, str] = {}
    pins: dict[str, str] = {}
    repositories = []
    for item in items:
        if item.guest != "cvmfs":
            continue
        source = source_from_config(item.source)
        assert isinstance(source, CvmfsSource)
        if pins.setdefault(source.repository, item.release.pin) != item.release.pin:
            raise InvalidInput(
                f"two revisions of repository {source.repository} cannot be pinned in one CernVM guest",
                fix="unmount the other release of that repository first",
            )
        repositories.append(source.repository)
        files.update(cvmfs_client_files(source, item.release, proxy=proxy))
    if repositories:  # one file lists every pinned repository (each client file would name only its own)
        first = next(iter(files))
        files[first] = files[first].replace(
            f"CVMFS_REPOSITORIES={repositories[-1]}", "CVMFS_REPOSITORIES=" + ",".join(dict.fromkeys(repositories))
        )
    return files


def cernvm_context(context: Context, items: list[ProjectRelease]) -> Context:
    """``context`` plus the pinned CernVM-FS client files.

    The instance id names the pins, so cloud-init writes the files again when a pin changes.
    """
    release_files = cernvm_release_files(items, context.cvmfs_http_proxy)
    if not release_files:
        return context
    repos = [i.guest_path.split("/")[2] for i in items if i.guest == "cvmfs"]
    digest = hashlib.sha256(
        json.dumps(sorted((i.name, i.release.pin) for i in items if i.guest == "cvmfs")).encode()
    ).hexdigest()[:12]
    extra = tuple(f for f in context.extra_files if f.path not in release_files)
    extra += tuple(ExtraFile(path, text) for path, text in sorted(release_files.items()))
    return replace(
        context,
        cvmfs_repositories=tuple(dict.fromkeys([*context.cvmfs_repositories, *repos])),
        extra_files=extra,
        instance_id=f"{context.effective_instance_id}-rel-{digest}",
    )


def write_cernvm_seed(files: ProjectFiles, project: Project, items: list[ProjectRelease]) -> Path:
    """Re-write the project's CernVM seed with the releases' client configuration (read at next boot)."""
    try:
        stored = project_setup.read_stored_context(files.root)
    except VmlogError:
        stored = None
    context = Context.from_dict(stored) if stored else Context(hostname=project_setup.hostname_for(project.name))
    seed = next((Path(d["path"]) for d in project.spec.get("disks", []) if d.get("label") == "seed"), None)
    if seed is None:
        raise NotFound(
            f"project {project.name!r} has no contextualisation seed to carry the CernVM-FS configuration",
            fix="set the project up with `vml setup` (CernVM appliances get a seed)",
        )
    return write_seed("cernvm", cernvm_context(context, items), seed)
