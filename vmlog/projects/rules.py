"""What a snapshot model allows a project to do: the rules a use case asks instead of testing the model itself."""

from __future__ import annotations

from hypervisors.base import Hypervisor, SnapshotModel
from vmlog.errors import InvalidInput
from vmlog.projects.model import Project
from vmlog.projects.store import ProjectFiles


def check_renamable(backend: Hypervisor, files: ProjectFiles, project: Project) -> None:
    """Refuse a rename that would lose data: ``InvalidInput`` with the fix.

    A native snapshot tree keeps the states (and disks vmlog created) inside the hypervisor's VM,
    which a rename deletes and defines anew; an overlay chain keeps them in the project's files.
    """
    if backend.snapshot_model != SnapshotModel.NATIVE_TREE:
        return
    if files.states() or any(root.file for root in project.roots.values()):
        raise InvalidInput(
            f"the states and disks of {project.name!r} belong to its {backend.name} VM, which a rename would delete",
            fix="keep the name, or export the states as bundles first",
        )
