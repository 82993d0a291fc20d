"""Whether a state's memory image can resume elsewhere: the stack it was saved on, recorded and compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypervisors.errors import HypervisorError
from vmlog.projects.backends import open_backend
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles

# What a memory image needs to resume, recorded in the manifest and compared on import.
MEMORY_STACK_KEYS = ("hypervisor", "domain_type", "qemu", "arch", "machine", "memory_mib", "cpus")


def memory_stack(project: Project, state: State, memory: Path) -> dict[str, Any]:
    """The stack ``memory`` resumes on (see :data:`MEMORY_STACK_KEYS`), read by the state's backend."""
    backend_name = state.backend or project.backend
    if backend_name != project.backend:
        return {"backend": backend_name}
    with open_backend(project) as backend:
        try:
            return {"backend": backend_name, **backend.memory_image_stack(memory)}
        except HypervisorError:  # an importer then refuses the image: it cannot check the stack
            return {"backend": backend_name}


def memory_mismatch(recorded: dict[str, Any], here: dict[str, Any]) -> str | None:
    """Why a memory image recorded with stack ``recorded`` cannot resume on ``here`` (None: it can)."""
    missing = [key for key in MEMORY_STACK_KEYS if key not in recorded]
    if missing:
        return "the bundle does not record the " + ", ".join(missing) + " the memory image needs"
    differ = [
        f"{key} {recorded[key]} (here {here.get(key)})"
        for key in MEMORY_STACK_KEYS
        if recorded[key] != here.get(key)
    ]
    if differ:
        return "it was saved on another stack: " + ", ".join(differ)
    return None


def memory_fits(files: ProjectFiles, recorded: dict[str, Any]) -> str | None:
    """Why a bundle's memory image cannot resume in the project of ``files`` here (None: it can)."""
    project = files.load()
    try:
        with open_backend(project) as backend:
            here = backend.memory_stack(files.vm_spec(project))
    except HypervisorError as exc:
        return f"the {project.backend} backend cannot check it: {exc.message}"
    return memory_mismatch(recorded, {"backend": project.backend, **here})
