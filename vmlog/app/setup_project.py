"""The use cases ``vml setup`` is made of: create a contextualised project, complete it, wait for its guest, reach it.

:func:`vmlog.setup.setup` strings these together (with :mod:`vmlog.app.appliances` for the pull);
each is a short sequence of domain calls: the appliance's VM (:mod:`vmlog.context.appliance_vm`),
what setup keeps next to a project (:mod:`vmlog.context.project_setup`) and how a guest shows it
is ready (:mod:`vmlog.context.readiness`).
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors.base import VMState
from hypervisors.errors import HypervisorError
from hypervisors.spec import VMSpec
from vmlog.app import projects
from vmlog.app.appliances import FoundAppliance, canonical_backend, store_name
from vmlog.appliances.box import read_archive
from vmlog.appliances.builtin import builtin_appliance_for
from vmlog.appliances.model import Appliance, ApplianceVersion
from vmlog.context import project_setup
from vmlog.context.appliance_vm import MIN_MEMORY_MIB, SSH_GUEST_PORT, appliance_vm
from vmlog.context.guest import VMLOG_AGENT, guest_agent_kind, open_guest
from vmlog.context.model import Context, ExtraFile
from vmlog.context.quiesce import sync_guest_clock
from vmlog.context.readiness import GuestNotReady, GuestReadyCheck, console_has, ssh_banner, wait_until
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.fsutil import atomic_write_bytes
from vmlog.logbook import Operation
from vmlog.projects import remote_ssh
from vmlog.projects.backends import open_backend, vm_state
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import Project
from vmlog.projects.names import check_project_name
from vmlog.projects.remote_seed import upload_seed
from vmlog.store.model import StoredImage
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace, workspace

__all__ = ["Context", "ExtraFile", "GuestNotReady", "SshAccess", "VMState", "Workspace"]

Say = Callable[[str, str], None]  # (phase, message)
hostname_for = project_setup.hostname_for
default_context = project_setup.default_context
context_to_dict = project_setup.context_to_dict


@dataclass(frozen=True)
class SshAccess:
    """A forwarded SSH port of a project's VM, and whether an SSH server answers on it now."""

    port: int
    user: str
    host: str = "127.0.0.1"
    banner: str | None = None
    identity: str | None = None  # the private key whose public half the seed gave the user
    known_hosts: str | None = None  # the project's own known_hosts (its guest made its host key at first boot)
    proxy: tuple[str, ...] = ()  # ssh options reaching the port through a remote project's host

    @property
    def reachable(self) -> bool:
        return self.banner is not None

    def command(self, project: str) -> list[str]:
        """The ssh command line; the host key is remembered per project, not per (reused) port."""
        argv = ["ssh", *self.proxy, "-p", str(self.port), "-o", f"HostKeyAlias=vmlog-{project}"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=accept-new"]
        if self.identity:
            argv += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        return [*argv, f"{self.user}@{self.host}"]

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "reachable": self.reachable}


def ssh_access(project: str | None = None, *, check: bool = True, ctx: Workspace | None = None) -> SshAccess:
    """The project's forwarded SSH port (``NotFound`` if it has none); ``check`` reads the banner."""
    ctx = workspace(ctx)
    files, proj = projects.load(project, ctx)
    forwards = [f for nic in VMSpec.from_dict(proj.spec).nics for f in nic.forwards]
    port = next((f.host_port for f in forwards if f.guest_port == SSH_GUEST_PORT and f.protocol == "tcp"), None)
    if port is None:
        raise NotFound(
            f"project {proj.name!r} has no forwarded SSH port",
            fix=f"use `vml console {proj.name}` (setup forwards SSH to appliances with an SSH server)",
        )
    stored = project_setup.read_stored_context(files.root) or {}
    key = project_setup.private_key_for(stored.get("ssh_public_key"))
    box_key = project_setup.setup_dir(files.root) / BOX_KEY_FILE
    if key is None and box_key.is_file():
        key = box_key
    known_hosts = str(project_setup.setup_dir(files.root) / project_setup.KNOWN_HOSTS_FILE)
    access = SshAccess(port=port, user=str(stored.get("user") or Context().user),
                       identity=str(key) if key else None, known_hosts=known_hosts)
    if proj.remote:  # the forward listens on the host's loopback: reached through the host, as libvirt is
        access = dataclasses.replace(access, proxy=remote_ssh.proxy_options(proj.uri or ""))
        return dataclasses.replace(access, banner=remote_ssh.guest_banner(proj.uri or "", port)) if check else access
    return dataclasses.replace(access, banner=ssh_banner(port)) if check else access


def setup_project_name(name: str | None, appliance: str) -> str:
    """The project name a setup of ``appliance`` uses: ``name``, or the appliance's store name."""
    return check_project_name(name or store_name(appliance))


@contextmanager
def setup_logbook_row(name: str, appliance: str, *, ctx: Workspace | None = None) -> Iterator[Operation]:
    """The logbook row of one setup run; the project's own use cases inside it take its lock themselves."""
    with workspace(ctx).logbook.operation(name, "setup", appliance=appliance) as operation:
        yield operation


def project_exists(name: str, *, ctx: Workspace | None = None) -> bool:
    return name in workspace(ctx).projects.names()


def create_setup_project(
    name: str,
    found: FoundAppliance,
    image_sha256: str,
    backend: str,
    context: Context,
    *,
    cpus: int | None,
    memory_mib: int | None,
    say: Say,
    backend_options: dict[str, Any] | None = None,
    scratch_size: str | None = None,
    ctx: Workspace | None = None,
) -> list[str]:
    """Create and contextualise the project as one step (on any failure it is removed again); the warnings.

    ``scratch_size`` replaces the scratch disk the appliance asks for (``vml project new --disk-size``).
    """
    ctx = workspace(ctx)
    appliance, version = found.appliance, found.version
    seed_path = project_setup.setup_dir(ctx.projects.files(name).root) / project_setup.SEED_FILE
    vm = appliance_vm(appliance, version, seed_path, cpus=cpus, memory_mib=memory_mib)
    scratch = scratch_size or vm.scratch_size
    extra_text = f", scratch disk {scratch}" if scratch else ""
    say("project", f"creating project {name} on {backend}{extra_text}")
    project = projects.new_project(
        name, image_sha256, backend=backend, backend_options=backend_options, cpus=vm.cpus, memory_mib=vm.memory_mib,
        scratch_size=scratch, extra_disks=vm.extra_disks, nics=vm.nics, ctx=ctx,
    )  # fmt: skip
    say("project", f"{name} created on {backend}{extra_text}")
    try:
        say("contextualise", f"{version.context} seed: hostname {context.hostname}")
        project_setup.write_context_files(ctx.projects.files(project.name).root, vm.meta(appliance, version), context)
        if project.remote:
            say("contextualise", f"uploading the seed to {project.uri}")
            files = ctx.projects.get(project.name)
            upload_seed(files, project_setup.setup_dir(files.root) / project_setup.SEED_FILE)
        say("contextualise", f"{version.context} seed written: hostname {context.hostname}")
    except BaseException:
        projects.remove_project(name, ctx=ctx)
        raise
    warnings = list(vm.warnings)
    if vm.ssh_port is not None and not context.ssh_public_key:
        warnings.append(
            f"no SSH public key to give {context.user} (none in the context, no ~/.ssh/id_*.pub): the user's"
            " password is locked, so `vml ssh` cannot log in; make a key (`ssh-keygen -t ed25519`) before setup"
        )
    return warnings


VAGRANT_USER = "vagrant"  # the user every Vagrant box has (Vagrant's box conventions)
BOX_KEY_MEMBER = "vagrant_private_key"  # what `vagrant package` puts in a box made from a machine with its own key
BOX_KEY_FILE = "vagrant_private_key"
_MAX_KEY_BYTES = 16 * 1024


def keep_box_private_key(box: Path, setup_dir: Path) -> Path | None:
    """Copy the private key a Vagrant box carries (``vagrant_private_key``) into ``setup_dir``; None if it has none.

    The box is hostile input: the key is read through the box reader's checks, bounded, and must look
    like a private key; it is kept readable by the user only, as ssh demands.
    """
    with tempfile.TemporaryDirectory(dir=setup_dir.parent) as work:
        members = read_archive(
            box, Path(work), wanted=lambda name, _read: _MAX_KEY_BYTES if name == BOX_KEY_MEMBER else None,
            max_total=_MAX_KEY_BYTES, kinds=("tar", "gzip", "bzip2", "xz"), what="a Vagrant box",
        )  # fmt: skip
        if BOX_KEY_MEMBER not in members:
            return None
        data = members[BOX_KEY_MEMBER].path.read_bytes()
    if not data.startswith(b"-----BEGIN ") or b"PRIVATE KEY-----" not in data:
        return None
    setup_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(setup_dir / BOX_KEY_FILE, data, mode=0o600)


@dataclass(frozen=True)
class ContextualisedProject:
    """A project made by ``vml project new`` with a context: how its guest is reached, what to look out for."""

    project: Project
    seed: str  # the seed kind written ("nocloud", "cernvm") or "none"
    ssh_port: int | None
    user: str
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project.name, "seed": self.seed, "ssh_port": self.ssh_port, "user": self.user,
                "warnings": list(self.warnings)}  # fmt: skip


def is_vagrant_box(image: str) -> bool:
    """True if ``image`` is a Vagrant box file (whose guests have the ``vagrant`` user)."""
    path = Path(image).expanduser()
    return path.suffix.lower() == ".box" and path.is_file()


def _local_appliance(stored: StoredImage, kind: str, ctx: Workspace) -> FoundAppliance:
    """A store image as setup sees a catalog appliance: a built-in appliance's boot facts if it is one."""
    boot: dict[str, Any] = {"ssh": True}
    min_memory = MIN_MEMORY_MIB
    known = builtin_appliance_for(stored.name, ctx.home.config)
    if known is not None:
        boot, min_memory = dict(known.versions[0].boot), known.versions[0].min_memory_mib
    version = ApplianceVersion(
        version=stored.version, images={}, min_memory_mib=min_memory, context=kind, boot={**boot, "ssh": True}
    )
    appliance = Appliance(name=stored.name, title=stored.name, description="", versions=(version,), catalog="local")
    return FoundAppliance(appliance, version)


def new_project_with_context(
    name: str,
    image: str,
    context: Context | None,
    *,
    kind: str | None = None,
    backend: str = "kvm",
    backend_options: dict[str, Any] | None = None,
    cpus: int = 1,
    memory_mib: int = 512,
    scratch_size: str | None = None,
    progress: Progress = no_progress,
    ctx: Workspace | None = None,
) -> ContextualisedProject:
    """``vml project new`` with a context: a local or store image gets a seed and an SSH forward as setup gives.

    ``kind`` is the seed to write (a template's kind; ``nocloud`` by default). A Vagrant box without a
    context gets no seed (boxes are not contextualised) and is logged into as ``vagrant``.
    """
    ctx = workspace(ctx)
    check_project_name(name)
    if name in ctx.projects.names():
        raise AlreadyExists(f"a project called {name!r} exists", fix="choose another name")
    if context is None:
        if not is_vagrant_box(image):
            raise InvalidInput("no context given for the new project", fix="name a template with --context NAME")
        context, kind = Context(user=VAGRANT_USER, hostname=project_setup.hostname_for(name)), "none"
    stored = projects.base_image(image, progress=progress, ctx=ctx)
    found = _local_appliance(stored, kind or "nocloud", ctx)
    warnings = create_setup_project(
        name, found, stored.sha256, projects.check_backend(backend), context, cpus=cpus, memory_mib=memory_mib,
        say=lambda _phase, message: progress(message, None), backend_options=backend_options,
        scratch_size=scratch_size, ctx=ctx,
    )  # fmt: skip
    if kind == "none" and context.user == VAGRANT_USER:
        warnings = [w for w in warnings if "no SSH public key" not in w]
    files, project = projects.load(name, ctx)
    if is_vagrant_box(image) and context.user == VAGRANT_USER:
        try:
            keep_box_private_key(Path(image).expanduser(), project_setup.setup_dir(files.root))
        except VmlogError as exc:  # the project is whole; only the key is missing
            warnings.append(f"the box's private key was not kept ({exc.message}): `vml ssh` offers your own keys")
    meta = project_setup.read_setup_meta(files.root) or {}
    port = meta.get("ssh_port")
    return ContextualisedProject(project, kind or "nocloud", int(port) if port else None, context.user, warnings)

def complete_setup_project(name: str, *, say: Say, ctx: Workspace | None = None) -> dict[str, Any]:
    """setup.json of an existing project (made up for one made by ``vml project new``); re-writes a lost seed."""
    ctx = workspace(ctx)
    files, project = projects.load(name, ctx)
    meta = project_setup.read_setup_meta(files.root) or project_setup.meta_without_setup(project.base)
    seed = next((d for d in VMSpec.from_dict(project.spec).disks if d.label == "seed"), None)
    kind = str(meta.get("context"))
    if project.remote:  # the VM's seed is a volume of the host, the one written here its source
        upload_seed(files, project_setup.setup_dir(files.root) / project_setup.SEED_FILE, only_missing=True)
    elif seed is not None and project_setup.seed_is_missing(kind, seed.path):
        say("contextualise", f"writing the missing {kind} seed")
        project_setup.rewrite_seed(files.root, project.name, kind, seed.path)
    return meta


def stored_context(name: str, *, ctx: Workspace | None = None) -> dict[str, Any] | None:
    """The context (as a dict) the project's seed was rendered from, None if setup wrote none."""
    return project_setup.read_stored_context(workspace(ctx).projects.files(name).root)


def overrides_ignored(
    name: str,
    meta: dict[str, Any],
    *,
    appliance: str | None,
    backend: str | None,
    cpus: int | None,
    memory_mib: int | None,
    context: Context | None,
    ctx: Workspace | None = None,
) -> list[str]:
    """A re-run on an existing project: refuse another appliance; the warnings for overrides that no longer apply."""
    ctx = workspace(ctx)
    if appliance and meta.get("appliance") and store_name(appliance) != store_name(str(meta["appliance"])):
        raise AlreadyExists(
            f"project {name!r} exists and runs {meta['appliance']}, not {appliance}",
            fix=f"choose another project name with --name, or `vml project rm {name}` first",
        )
    _files, project = projects.load(name, ctx)
    spec = VMSpec.from_dict(project.spec)
    ignored = []
    if backend and canonical_backend(backend) != project.backend:
        ignored.append(f"--backend (the project uses {project.backend})")
    if cpus and cpus != spec.cpus:
        ignored.append(f"--cpus (the VM has {spec.cpus})")
    if memory_mib and memory_mib != spec.memory_mib:
        ignored.append(f"--memory (the VM has {spec.memory_mib} MiB)")
    if context is not None and context_to_dict(context) != stored_context(name, ctx=ctx):
        ignored.append("--context (the seed was written when the project was created)")
    return [f"project {name} exists; ignored: " + ", ".join(ignored)] if ignored else []


def vm_state_of(name: str, *, ctx: Workspace | None = None) -> VMState:
    """The project's VM state; a VM the backend does not know yet counts as stopped."""
    _files, project = projects.load(name, workspace(ctx))
    with open_backend(project) as backend:
        return vm_state(backend, project.vm_name)


def _why_not_alive(project: Project) -> Callable[[], str | None]:
    def alive() -> str | None:
        try:
            with open_backend(project) as backend:
                state = backend.state(project.vm_name)
        except HypervisorError:
            return None
        return None if state in (VMState.RUNNING, VMState.TRANSITIONING, VMState.PAUSED) else f"is {state.value}"

    return alive


def wait_until_ready(
    name: str,
    meta: dict[str, Any],
    *,
    timeout: float,
    say: Say,
    cancel: threading.Event | None,
    ctx: Workspace | None = None,
) -> str | None:
    """Wait for the guest to show it is ready the way ``meta`` says: "agent", "ssh", "console", or None.

    With a guest agent, ready means the agent answers and cloud-init finished (its ``boot-finished``
    file, read through the agent): an SSH banner comes while cloud-init is still at work.
    """
    files, project = projects.load(name, workspace(ctx))
    spec = files.vm_spec(project)
    fix = f"look at `vml console {project.name}`; `vml setup --name {project.name}` again keeps waiting"
    waits: dict[str, Any] = {"timeout": timeout, "alive": _why_not_alive(project), "cancel": cancel, "fix": fix}
    kind = guest_agent_kind(meta)
    if kind is not None:
        with open_backend(project) as backend, open_guest(backend, project.vm_name, kind, spec.channel_socket) as agent:
            what = "the guest agent" if kind == VMLOG_AGENT else "the guest agent and cloud-init"
            say("ready", f"waiting for {what}")
            wait_until(GuestReadyCheck(agent, cloud_init=kind != VMLOG_AGENT), what=what, **waits)
        say("ready", "the guest agent answers" + ("" if kind == VMLOG_AGENT else " and cloud-init finished"))
        return "agent"
    if meta.get("ssh_port"):
        port = int(meta["ssh_port"])
        say("ready", f"waiting for SSH on 127.0.0.1:{port}")
        wait_until(lambda: ssh_banner(port) is not None, what="SSH", **waits)
        say("ready", f"SSH answers on 127.0.0.1:{port}")
        return "ssh"
    if meta.get("ready_marker"):
        marker = str(meta["ready_marker"])
        say("ready", f"waiting for {marker!r} on the console")
        wait_until(lambda: console_has(spec.serial_log, marker), what=marker, **waits)
        say("ready", f"the console says {marker!r}")
        return "console"
    say("ready", "the appliance has no way to report ready; it is booting")
    return None


@dataclass(frozen=True)
class ReachFacts:
    """Where a set-up project's VM can be reached: its console log, agent socket, hostname."""

    vm_name: str
    backend: str
    hostname: str
    console_log: str | None
    agent_socket: str | None


def reach_facts(name: str, meta: dict[str, Any], *, ctx: Workspace | None = None) -> ReachFacts:
    files, project = projects.load(name, workspace(ctx))
    spec = files.vm_spec(project)
    stored = project_setup.read_stored_context(files.root) or {}
    serial_agent = guest_agent_kind(meta) == VMLOG_AGENT
    return ReachFacts(
        vm_name=project.vm_name,
        backend=project.backend,
        hostname=str(stored.get("hostname") or ""),
        console_log=str(spec.serial_log) if spec.serial_log else None,
        agent_socket=str(spec.channel_socket) if serial_agent and spec.channel_socket else None,
    )


def ask_guest_agent(socket_path: Path, commands: list[str], *, ready_timeout: float = 60) -> list[str]:
    """The output of each of ``commands`` run in the guest through the vmlog agent (test appliance)."""
    with GuestChannel(socket_path) as guest:
        guest.wait_ready(ready_timeout)
        return [guest.check_output(command).strip() for command in commands]


def ask_guest(name: str, commands: list[str], *, ready_timeout: float = 60, ctx: Workspace | None = None) -> list[str]:
    """The output of each of ``commands`` run in project ``name``'s running guest through its agent."""
    files, project = projects.load(name, workspace(ctx))
    spec = files.vm_spec(project)
    meta = project_setup.read_setup_meta(files.root) or project_setup.meta_without_setup(project.base)
    with open_backend(project) as backend:
        with open_guest(backend, project.vm_name, guest_agent_kind(meta), spec.channel_socket) as agent:
            agent.wait_ready(ready_timeout)
            return [agent.check_shell(command).strip() for command in commands]


def set_guest_clock(name: str, *, ctx: Workspace | None = None) -> str | None:
    """After a resume: set the guest clock to the host's through its agent; None, or why it was not set.

    A saved guest's clock stood still while it was saved; the standard agents set it (``guest-set-time``).
    """
    files, project = projects.load(name, workspace(ctx))
    meta = project_setup.read_setup_meta(files.root) or project_setup.meta_without_setup(project.base)
    kind = guest_agent_kind(meta)
    if kind is None:
        return None
    socket = files.vm_spec(project).channel_socket
    with open_backend(project) as backend:
        return sync_guest_clock(backend, project.vm_name, kind=kind, channel_socket=socket)
