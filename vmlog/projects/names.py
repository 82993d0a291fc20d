"""The names vmlog gives things of a project: checked project names, VM names, store holders, file parts."""

from __future__ import annotations

from hypervisors.spec import check_vm_name
from vmlog.errors import InvalidInput
from vmlog.paths import VmlogHome
from vmlog.projects.model import Project


def project_holder(project: Project) -> str:
    """The name under which a project holds its base image in the store."""
    return f"project:{project.id}"


def vm_name_for(h: VmlogHome, project: str) -> str:
    """The VM of ``project`` in home ``h``: the home id keeps two homes on one hypervisor apart."""
    return check_vm_name(f"vmlog-{h.home_id}-{project}")


def check_project_name(name: str) -> str:
    try:
        check_vm_name(name)
    except ValueError:
        raise InvalidInput(
            f"invalid project name {name!r}",
            fix="use letters, digits, '.', '_' or '-', starting with a letter or digit (at most 60)",
        ) from None
    if len(name) > 60:
        raise InvalidInput(f"project name {name!r} is too long", fix="use at most 60 characters")
    return name


def safe_file_part(text: str) -> str:
    """``text`` reduced to characters safe in a file or image name."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip(".-") or "image"
    return cleaned[:60]
