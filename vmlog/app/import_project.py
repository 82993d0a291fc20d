"""The project an import creates: the importer's SSH forward and a seed with the importer's user and key.

A state from a bundle holds the sender's guest, which already ran cloud-init for the sender's
instance. cloud-init runs its per-instance modules (the user and its SSH key, the hostname, host
keys, ``write_files``/``runcmd``) only when the seed's instance-id is new to the guest, so the seed
of an imported project always carries a new one (``vmlog-<hostname>-<state id>``). That is the
price of logging in with the importer's key: at the first cold boot here the guest makes new SSH
host keys and runs the sender's per-instance steps of the seed again (only the importer's seed
is there; the sender's own seed did not travel). A state resumed from its memory image runs
nothing until its next cold boot.

The seed and forward are setup's own (:func:`vmlog.app.setup_project.new_project_with_context`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hypervisors import registry
from hypervisors.base import Capability
from hypervisors.errors import ReportableError
from vmlog.app import projects
from vmlog.app.contexts import login_user
from vmlog.app.setup_project import new_project_with_context
from vmlog.appliances.builtin import builtin_appliances
from vmlog.context import project_setup
from vmlog.context.model import Context
from vmlog.context.seed import SEED_KINDS
from vmlog.projects import releases as project_releases
from vmlog.store.model import StoredImage
from vmlog.workspace import Workspace

SEED_NONE = "none"


@dataclass(frozen=True)
class ImportedProject:
    """How the importer reaches the new project's guest, and what to look out for."""

    ssh_port: int | None
    user: str | None
    seed: str
    warnings: list[str] = field(default_factory=list)


def import_context(project: str, state_id: str) -> Context:
    """The importer's context for ``project``: their login user and SSH key, a new instance-id for ``state_id``."""
    context = project_setup.default_context(project)
    return dataclasses.replace(
        context, user=login_user(), instance_id=f"vmlog-{context.hostname}-{state_id[:12]}"[:120]
    )


def seed_kind_for(image: StoredImage, ctx: Workspace) -> str:
    """The seed a base takes: a built-in appliance's own kind (``cernvm``, ``nocloud``), else NoCloud (cloud images)."""
    for known in builtin_appliances(ctx.home.config):
        if known.store_name == image.name and known.versions:
            kind = known.versions[0].context
            return kind if kind in SEED_KINDS else SEED_NONE
    return "nocloud"


def create_imported_project(
    name: str,
    image: StoredImage,
    state_id: str,
    *,
    backend: str,
    backend_options: dict[str, Any] | None,
    cpus: int,
    memory_mib: int,
    context: Context | None = None,
    with_memory: bool = False,
    ctx: Workspace,
) -> ImportedProject:
    """Make project ``name`` on ``image`` as setup would, seeded with ``context`` (default: :func:`import_context`).

    A backend without per-VM port forwards (VMware) gets the plain project an import always made,
    and a warning: there is no forward for ``vml ssh`` to use. So does a bundle with a memory image
    (``with_memory``): QEMU resumes it only into a VM with the sender's devices, and a seed drive or
    another NIC would make the restore fail.
    """
    why_plain = None
    if with_memory:
        why_plain = "the state resumes from its memory image, which needs the sender's devices"
    elif not _forwards_ports(backend, backend_options):
        why_plain = f"the {backend} backend has no per-VM port forwards"
    if why_plain is not None:
        projects.new_project(name, image.sha256, backend=backend, backend_options=backend_options, cpus=cpus,
                             memory_mib=memory_mib, ctx=ctx)  # fmt: skip
        warning = f"{why_plain}, so the imported project has no SSH forward or seed: log in with `vml console {name}`"
        return ImportedProject(None, None, SEED_NONE, [warning])
    made = new_project_with_context(
        name, image.sha256, context or import_context(name, state_id), kind=seed_kind_for(image, ctx),
        backend=backend, backend_options=backend_options, cpus=cpus, memory_mib=memory_mib, ctx=ctx,
    )  # fmt: skip
    return ImportedProject(made.ssh_port, made.user, made.seed, list(made.warnings))


def _forwards_ports(backend: str, options: dict[str, Any] | None) -> bool:
    """False for a backend that refuses a VM with a port forward (VMware: no ``PORT_FORWARD``, native snapshots).

    libvirt keeps the forward in the spec it defines the domain from; a driver without QEMU (the
    test driver) ignores it. A backend that cannot even be opened is not ruled out here.
    """
    try:
        with registry.open_backend(backend, **(options or {})) as hypervisor:
            return hypervisor.can(Capability.PORT_FORWARD) or hypervisor.can(Capability.OVERLAY_CHAIN)
    except ReportableError:
        return True


def releases_not_mounted(records: object, ctx: Workspace) -> list[str]:
    """One line per release a state had mounted whose source is not configured here (so it is not re-mounted)."""
    return [
        f"{item.describe()} from {item.source.get('url')} (source not configured here)"
        for item in project_releases.unconfigured_releases(records, ctx.home)
    ]
