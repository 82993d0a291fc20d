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
An unarchived project gets the same from the same pieces (:func:`reseed_unarchived`), on the
record the archive carried; its seed changes instance-id only when the importer is not the user
and key the archived seed already had.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import Capability
from hypervisors.errors import ReportableError
from hypervisors.spec import NicSpec, VMSpec
from vmlog.app import projects
from vmlog.app.contexts import login_user
from vmlog.app.setup_project import new_project_with_context
from vmlog.appliances.builtin import builtin_appliance_for
from vmlog.context import project_setup
from vmlog.context.appliance_vm import SSH_GUEST_PORT, ready_plan, seed_drive, ssh_forward
from vmlog.context.guest import AGENT_KINDS, VMLOG_AGENT, guest_agent_kind
from vmlog.context.model import Context
from vmlog.context.readiness import free_tcp_port
from vmlog.context.seed import SEED_KINDS
from vmlog.errors import VmlogError
from vmlog.projects import releases as project_releases
from vmlog.projects.model import Project
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
    known = builtin_appliance_for(image.name, ctx.home.config)
    if known is None:
        return "nocloud"
    kind = known.versions[0].context
    return kind if kind in SEED_KINDS else SEED_NONE


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
    guest_agent: str | None = None,
    ctx: Workspace,
) -> ImportedProject:
    """Make project ``name`` on ``image`` as setup would, seeded with ``context`` (default: :func:`import_context`).

    ``guest_agent`` is the agent the sender's project knew its guest runs (``standard``), where the
    bundle carries it: recorded for a base vmlog has no facts about, which otherwise learns it only
    once its VM runs (:func:`vmlog.projects.release_guest.find_guest_agent`).

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
    if guest_agent in AGENT_KINDS and guest_agent_kind(base_plan(image, ctx)) is None:
        project_setup.record_guest_agent(ctx.projects.get(name).root, made.project.base, str(guest_agent))
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


def base_plan(image: StoredImage, ctx: Workspace) -> dict[str, Any]:
    """What setup knows of a base's guest (agent, ready marker): a built-in appliance's plan, else nothing."""
    known = builtin_appliance_for(image.name, ctx.home.config)
    if known is not None:
        return ready_plan(known, known.versions[0])
    return {"agent": False, "guest_agent": None, "ready_marker": None}


def _archived_setup(root: Path) -> tuple[dict[str, Any] | None, Context | None]:
    """The ``setup.json`` and context an archive carried (None where missing or unreadable: it came from elsewhere)."""
    try:
        meta = project_setup.read_setup_meta(root)
        stored = project_setup.read_stored_context(root)
        context = Context.from_dict(stored) if isinstance(stored, dict) else None
    except (VmlogError, TypeError, ValueError):
        return None, None
    return (meta if isinstance(meta, dict) else None), context


def _unarchived_context(name: str, state_id: str, archived: Context | None, kind: str) -> tuple[Context, bool]:
    """The seed's context, and whether its instance-id is new.

    The archived one is kept whole when it already names the importer and their key: the guest ran
    cloud-init for that instance, its user has that key, and a new instance-id would only make it
    regenerate its host keys and run the seed's per-instance steps again.
    """
    importer = import_context(name, state_id)
    if kind not in SEED_KINDS:
        return (archived or importer), False
    if archived is not None and (archived.user, archived.ssh_public_key) == (importer.user, importer.ssh_public_key):
        return archived, False
    return importer, True


def _with_ssh_forward(spec: VMSpec, port: int) -> VMSpec:
    """``spec`` with its guest-port-22 forward on ``port`` here (the archived host port belongs to another machine)."""
    forward = ssh_forward(port)
    nics = list(spec.nics) or [NicSpec()]
    for index, nic in enumerate(nics):
        if any(f.guest_port == SSH_GUEST_PORT and f.protocol == "tcp" for f in nic.forwards):
            kept = tuple(f for f in nic.forwards if not (f.guest_port == SSH_GUEST_PORT and f.protocol == "tcp"))
            nics[index] = dataclasses.replace(nic, forwards=(*kept, forward))
            return spec.replace(nics=tuple(nics))
    nics[0] = dataclasses.replace(nics[0], forwards=(*nics[0].forwards, forward))
    return spec.replace(nics=tuple(nics))


def _with_seed_disk(spec: VMSpec, seed_path: Path) -> VMSpec:
    """``spec`` with its seed drive at ``seed_path`` (added as setup adds it if the archived VM had none)."""
    disks = [d for d in spec.disks if d.label != "seed"]
    disks.append(seed_drive(seed_path))
    return spec.replace(disks=tuple(disks))


def reseed_unarchived(project: Project, staged_root: Path, final_root: Path, image: StoredImage, *,
                      ctx: Workspace) -> ImportedProject:
    """Give an unarchived ``project`` (being built in ``staged_root``) the importer's SSH forward and seed.

    The seed keeps the archived kind (a project without one gets the base's, as an import does) and
    the agent the archived ``setup.json`` named (:func:`vmlog.context.guest.guest_agent_kind`), else
    the base's if it is a built-in appliance. ``project.spec`` is changed in place; the seed and
    ``setup.json`` are written into ``staged_root``; paths in the spec name ``final_root``.
    """
    meta, archived = _archived_setup(staged_root)
    plan = base_plan(image, ctx)
    kind = str((meta or {}).get("context") or "none")
    if meta is None or (kind not in SEED_KINDS and archived is None):  # not made by setup: an import's seed
        kind = seed_kind_for(image, ctx)
    if meta is None:
        meta = {**project_setup.meta_without_setup(project.base), **plan}
    context, new_instance = _unarchived_context(project.name, project.current or project.id, archived, kind)
    port = free_tcp_port()
    spec = _with_ssh_forward(VMSpec.from_dict(project.spec), port)
    if kind in SEED_KINDS:
        spec = _with_seed_disk(spec, project_setup.setup_dir(final_root) / project_setup.SEED_FILE)
    project.spec = spec.to_dict()
    agent = guest_agent_kind(meta) or guest_agent_kind(plan)
    meta = {**meta, "context": kind, "ssh": True, "ssh_port": port, "guest_agent": agent, "agent": agent == VMLOG_AGENT}
    if new_instance:  # the guest makes new host keys for the new instance: the archived ones would clash
        (project_setup.setup_dir(staged_root) / project_setup.KNOWN_HOSTS_FILE).unlink(missing_ok=True)
    project_setup.write_context_files(staged_root, meta, context)
    warnings = []
    if not context.ssh_public_key:
        warnings.append(f"no SSH public key to give {context.user} (none in ~/.ssh/id_*.pub): the user's password is"
                        " locked, so `vml ssh` cannot log in; make a key (`ssh-keygen -t ed25519`) first")
    if new_instance:
        warnings.append(f"the seed has a new instance-id for {context.user}'s key: at its first boot here the guest"
                        " makes new SSH host keys and runs the seed's per-instance steps again")
    return ImportedProject(port, context.user, kind, warnings)
