"""``setup``: pick a backend, pull and verify the appliance, create and contextualise the project, boot it.

The CLI's ``vml setup`` and the GUI's "Set up" button both call :func:`setup`. It is idempotent: a
project that exists is not created again; it is completed if an earlier run was cut short, started
if it is stopped, and reported if it already runs. A run cancelled (or failed) before the project
was contextualised removes the project it created; the partial download stays for the next run.

What setup learnt about a project is kept next to it in ``<project>/setup/``: ``setup.json`` (the
appliance, how the guest reports ready, the SSH forward), ``context.json`` and the seed ISO.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import VMState
from hypervisors.errors import BackendUnavailable, HypervisorError, VMNotFound
from hypervisors.spec import DiskSpec, NicSpec, PortForward, VMSpec
from vmlog.app import projects, running
from vmlog.appliances.catalog import Appliance, ApplianceVersion, Catalogs, store_name
from vmlog.appliances.pull import choose_image, pull
from vmlog.context.model import Context
from vmlog.context.seed import SEED_KINDS, write_seed
from vmlog.errors import AlreadyExists, Cancelled, InvalidInput, NotFound, VmlogError
from vmlog.fsutil import atomic_write_text
from vmlog.projects.backends import open_backend
from vmlog.projects.model import Project
from vmlog.projects.names import check_project_name
from vmlog.setup.events import SetupEvent, SetupProgress, no_events
from vmlog.setup.readiness import (
    agent_answers,
    console_has,
    free_tcp_port,
    ssh_banner,
    wait_until,
)
from vmlog.testappliance.agent import GuestChannel
from vmlog.testappliance.build import APPLIANCE_NAME as TEST_APPLIANCE
from vmlog.workspace import Workspace

DEFAULT_APPLIANCE = "cernvm"
DEFAULT_READY_TIMEOUT = 900.0
SETUP_DIR = "setup"
SETUP_FILE = "setup.json"
CONTEXT_FILE = "context.json"
SEED_FILE = "seed.iso"
SSH_GUEST_PORT = 22
SSH_KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
# Formats the kvm backend can put under a qcow2 overlay as they are (no conversion needed).
_DIRECT = {"raw": "raw", "hdd": "raw", "img": "raw", "qcow2": "qcow2"}


@dataclass(frozen=True)
class SshAccess:
    """A forwarded SSH port of a project's VM, and whether an SSH server answers on it now."""

    port: int
    user: str
    host: str = "127.0.0.1"
    banner: str | None = None

    @property
    def reachable(self) -> bool:
        return self.banner is not None

    def command(self, project: str) -> list[str]:
        """The ssh command line; the host key is remembered per project, not per (reused) port."""
        return [
            "ssh",
            "-p",
            str(self.port),
            "-o",
            f"HostKeyAlias=vmlog-{project}",
            f"{self.user}@{self.host}",
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "reachable": self.reachable}


@dataclass
class SetupResult:
    project: str
    vm_name: str
    backend: str
    appliance: str
    version: str
    created: bool  # this run created the project
    vm_before: str  # the VM's state when this run found it ("absent" for a new project)
    ready_by: str | None  # "agent", "ssh", "console" or None (nothing to wait for)
    hostname: str
    console_log: str | None
    agent_socket: str | None
    ssh: SshAccess | None
    warnings: list[str] = field(default_factory=list)

    @property
    def already_running(self) -> bool:
        return self.vm_before == VMState.RUNNING.value

    def next_steps(self) -> list[tuple[str, str]]:
        """(command, what it does) for reaching and stopping the VM."""
        steps = [(f"vml console {self.project}", "the guest's serial console (-f to follow)")]
        if self.ssh is not None and self.ssh.reachable:
            steps.append((f"vml ssh {self.project}", f"log in as {self.ssh.user} (port {self.ssh.port})"))
        steps.append((f"vml down {self.project}", "shut the VM down (--save keeps its memory)"))
        return steps

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "ssh"}
        data["ssh"] = self.ssh.to_dict() if self.ssh else None
        data["already_running"] = self.already_running
        data["next_steps"] = [{"command": c, "what": w} for c, w in self.next_steps()]
        return data


# -- what setup keeps next to a project ----------------------------------------------------------


def setup_dir(ctx: Workspace, project: str) -> Path:
    return ctx.projects.files(project).root / SETUP_DIR


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise VmlogError(
            f"{path} is corrupt: {exc}", fix=f"delete {path}; `vml setup` writes it again"
        ) from exc


def context_to_dict(context: Context) -> dict[str, Any]:
    """The context as it reads back from ``context.json`` (lists, not tuples), so the two compare equal."""
    return json.loads(json.dumps(dataclasses.asdict(context)))


def hostname_for(project: str) -> str:
    """A valid hostname made from a project name (project names may hold '.' and '_')."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", project).strip("-")[:63].strip("-")
    return cleaned or "vmlog"


def default_context(project: str) -> Context:
    """The context of a project set up without ``--context``: its name as hostname, the user's SSH key."""
    key = None
    for name in SSH_KEY_FILES:
        path = Path.home() / ".ssh" / name
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text and "\n" not in text:
            key = text
            break
    return Context(hostname=hostname_for(project), ssh_public_key=key)


def ssh_access(
    project: str | None = None, *, check: bool = True, ctx: Workspace | None = None
) -> SshAccess:
    """The project's forwarded SSH port (``NotFound`` if it has none); ``check`` reads the banner."""
    ctx = ctx or Workspace.default()
    files, proj = projects.load(project, ctx)
    spec = VMSpec.from_dict(proj.spec)
    forwards = [f for nic in spec.nics for f in nic.forwards]
    port = next(
        (f.host_port for f in forwards if f.guest_port == SSH_GUEST_PORT and f.protocol == "tcp"), None
    )
    if port is None:
        raise NotFound(
            f"project {proj.name!r} has no forwarded SSH port",
            fix=f"use `vml console {proj.name}` (setup forwards SSH to appliances with an SSH server)",
        )
    stored = _read_json(files.root / SETUP_DIR / CONTEXT_FILE) or {}
    access = SshAccess(port=port, user=str(stored.get("user") or Context().user))
    if check:
        access = dataclasses.replace(access, banner=ssh_banner(port))
    return access


# -- the steps -----------------------------------------------------------------------------------


def _check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"setup cancelled {what}", fix="run `vml setup` again; it continues where it stopped")


def choose_backend(requested: str | None, progress: SetupProgress) -> str:
    """The requested backend if it works here, else ``vml doctor``'s best usable one."""
    if requested:
        try:
            name = registry.canonical_name(requested)
        except ValueError as exc:
            raise InvalidInput(str(exc), fix="see `vml doctor` for the backends") from None
        probe = registry.probe(name)
        if not probe.available:
            raise BackendUnavailable(
                f"the {name} backend does not work here: {probe.summary}", fix=probe.fix, backend=name
            )
        progress(SetupEvent("backend", f"{name}: {probe.summary}"))
        return name
    from vmlog.app.doctor import diagnose

    progress(SetupEvent("backend", "checking which hypervisors work here"))
    report = diagnose()
    best = report.best_backend()
    if best is None:
        reasons = "; ".join(f"{p.backend}: {p.summary}" for p in report.backends)
        raise BackendUnavailable(f"no hypervisor works on this machine ({reasons})", fix="run `vml doctor`")
    probe = next(p for p in report.backends if p.backend == best)
    progress(SetupEvent("backend", f"{best}: {probe.summary}"))
    return best


def _has_agent(appliance: Appliance, version: ApplianceVersion) -> bool:
    return version.boot.get("agent") == "vmlog" or appliance.name == TEST_APPLIANCE


def _ready_plan(appliance: Appliance, version: ApplianceVersion) -> dict[str, Any]:
    """How this appliance's guest shows it is ready, and whether to forward SSH to it."""
    agent = _has_agent(appliance, version)
    marker = version.boot.get("ready_marker") or ("VMLOG-READY" if agent else None)
    return {"agent": agent, "ready_marker": marker, "ssh": bool(version.boot.get("ssh", not agent))}


def _pull(
    appliance: Appliance,
    version: ApplianceVersion,
    ctx: Workspace,
    backend: str,
    *,
    insecure: bool,
    progress: SetupProgress,
    cancel: threading.Event | None,
):  # -> PulledAppliance
    native = registry.backend_class(backend).native_disk_format
    source = choose_image(version, disk_format=native)
    if source.format == "iso" or source.format == "ova":
        raise InvalidInput(
            f"{appliance.name} {version.version} comes only as {source.format}, which setup cannot boot yet",
            fix="ask the catalog for a disk image (hdd, raw, qcow2, vmdk, vdi)",
        )
    # Use raw and qcow2 images as they are (a qcow2 overlay backs onto either); convert the others.
    disk_format = _DIRECT.get(source.format, native) if native == "qcow2" else native
    what = "building it on this machine" if appliance.local_builder and not source.urls else source.urls[0]
    progress(SetupEvent("download", f"{appliance.name} {version.version} ({source.format}) from {what}"))

    def on_bytes(done: int, total: int | None) -> None:
        progress(SetupEvent("download", f"{appliance.name} {version.version}", done, total or source.size))
        if total and done >= total:
            progress(SetupEvent("verify", "checking the digest and storing the image"))

    pulled = pull(
        appliance,
        ctx.images,
        version=version.version,
        fmt=next(key for key, src in version.images.items() if src is source),
        disk_format=disk_format,
        insecure=insecure,
        progress=on_bytes,
        cancel=cancel,
        downloads=ctx.home.downloads,
        build_cache=ctx.home.cache / "testappliance",
    )
    algo = source.digest[0] if source.digest else "sha256"
    progress(SetupEvent("verify", f"{algo} matches; stored as {pulled.image.sha256[:12]}"))
    if pulled.disk == pulled.image.path:
        progress(SetupEvent("convert", f"not needed: the {pulled.image.format} image is used as it is"))
    else:
        progress(SetupEvent("convert", f"converted to {pulled.disk_format}"))
    return pulled


def _write_context_files(
    ctx: Workspace, project: Project, meta: dict[str, Any], context: Context
) -> Path | None:
    """Write setup.json, context.json and the seed ISO the project's spec points at."""
    directory = setup_dir(ctx, project.name)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / CONTEXT_FILE, json.dumps(context_to_dict(context), indent=2) + "\n")
    seed = None
    if meta["context"] in SEED_KINDS:
        seed = write_seed(meta["context"], context, directory / SEED_FILE)
    atomic_write_text(directory / SETUP_FILE, json.dumps(meta, indent=2) + "\n")
    return seed


def _seed_disk(spec: VMSpec) -> DiskSpec | None:
    return next((d for d in spec.disks if d.label == "seed"), None)


def _create(
    name: str,
    appliance: Appliance,
    version: ApplianceVersion,
    image_sha256: str,
    backend: str,
    context: Context,
    *,
    cpus: int | None,
    memory_mib: int | None,
    ctx: Workspace,
    progress: SetupProgress,
    warnings: list[str],
) -> Project:
    """Create and contextualise the project as one step: on any failure the project is removed again."""
    plan = _ready_plan(appliance, version)
    memory = memory_mib or max(version.min_memory_mib, 256)
    if memory < version.min_memory_mib:
        warnings.append(f"{memory} MiB is below the {version.min_memory_mib} MiB {appliance.name} asks for")
    nics: tuple[NicSpec, ...] = (NicSpec(),)
    ssh_port = None
    if plan["ssh"]:
        ssh_port = free_tcp_port()
        nics = (NicSpec(forwards=(PortForward(host_port=ssh_port, guest_port=SSH_GUEST_PORT),)),)
    extra: tuple[DiskSpec, ...] = ()
    seed_path = setup_dir(ctx, name) / SEED_FILE
    if version.context in SEED_KINDS:
        extra = (DiskSpec(path=seed_path, format="raw", device="cdrom", readonly=True, label="seed"),)
    scratch = f"{version.scratch_disk_gib}G" if version.scratch_disk_gib else None
    extra_text = f", scratch disk {scratch}" if scratch else ""
    progress(SetupEvent("project", f"creating project {name} on {backend}{extra_text}"))
    project = projects.new_project(
        name,
        image_sha256,
        backend=backend,
        cpus=cpus or int(version.boot.get("cpus", 1)),
        memory_mib=memory,
        scratch_size=scratch,
        extra_disks=extra,
        nics=nics,
        ctx=ctx,
    )
    progress(SetupEvent("project", f"{name} created on {backend}{extra_text}"))
    try:
        meta = {
            "appliance": appliance.name,
            "version": version.version,
            "catalog": appliance.catalog,
            "context": version.context,
            "ssh_port": ssh_port,
            **plan,
        }
        progress(SetupEvent("contextualise", f"{version.context} seed: hostname {context.hostname}"))
        _write_context_files(ctx, project, meta, context)
        progress(SetupEvent("contextualise", f"{version.context} seed written: hostname {context.hostname}"))
    except BaseException:
        projects.remove_project(name, ctx=ctx)
        raise
    return project


def _complete(ctx: Workspace, project: Project, progress: SetupProgress) -> dict[str, Any]:
    """setup.json of an existing project; re-writes a seed lost to an interrupted run."""
    directory = setup_dir(ctx, project.name)
    meta = _read_json(directory / SETUP_FILE)
    if meta is None:  # a project made by `vml project new`: only the test appliance's agent is known
        agent = project.base.get("name") == store_name(TEST_APPLIANCE)
        meta = {"appliance": project.base.get("name"), "version": project.base.get("version"),
                "context": "none", "agent": agent, "ready_marker": "VMLOG-READY" if agent else None,
                "ssh": False, "ssh_port": None}  # fmt: skip
    seed = _seed_disk(VMSpec.from_dict(project.spec))
    if seed is not None and not seed.path.is_file() and meta.get("context") in SEED_KINDS:
        stored = _read_json(directory / CONTEXT_FILE)
        context = Context.from_dict(stored) if stored else default_context(project.name)
        progress(SetupEvent("contextualise", f"writing the missing {meta['context']} seed"))
        seed.path.parent.mkdir(parents=True, exist_ok=True)
        write_seed(meta["context"], context, seed.path)
    return meta


def _wait_ready(
    ctx: Workspace,
    project: Project,
    meta: dict[str, Any],
    *,
    timeout: float,
    progress: SetupProgress,
    cancel: threading.Event | None,
) -> str | None:
    spec = ctx.projects.files(project.name).vm_spec(project)

    def alive() -> str | None:
        try:
            with open_backend(project) as backend:
                state = backend.state(project.vm_name)
        except HypervisorError:
            return None
        return (
            None if state in (VMState.RUNNING, VMState.TRANSITIONING, VMState.PAUSED) else f"is {state.value}"
        )

    fix = f"look at `vml console {project.name}`; `vml setup` again keeps waiting"
    if meta.get("agent") and spec.channel_socket is not None:
        progress(SetupEvent("ready", "waiting for the guest agent to answer"))
        with GuestChannel(spec.channel_socket) as channel:
            wait_until(agent_answers(channel), timeout=timeout, what="the guest agent", alive=alive,
                       cancel=cancel, fix=fix)  # fmt: skip
        progress(SetupEvent("ready", "the guest agent answers"))
        return "agent"
    if meta.get("ssh_port"):
        port = int(meta["ssh_port"])
        progress(SetupEvent("ready", f"waiting for SSH on 127.0.0.1:{port}"))
        wait_until(lambda: ssh_banner(port) is not None, timeout=timeout, what="SSH", alive=alive,
                   cancel=cancel, fix=fix)  # fmt: skip
        progress(SetupEvent("ready", f"SSH answers on 127.0.0.1:{port}"))
        return "ssh"
    if meta.get("ready_marker"):
        marker = str(meta["ready_marker"])
        progress(SetupEvent("ready", f"waiting for {marker!r} on the console"))
        wait_until(lambda: console_has(spec.serial_log, marker), timeout=timeout, what=marker, alive=alive,
                   cancel=cancel, fix=fix)  # fmt: skip
        progress(SetupEvent("ready", f"the console says {marker!r}"))
        return "console"
    progress(SetupEvent("ready", "the appliance has no way to report ready; it is booting"))
    return None


def _vm_state(project: Project) -> VMState:
    """The VM's state; a VM the backend does not know yet counts as stopped."""
    with open_backend(project) as backend:
        try:
            return backend.state(project.vm_name) if backend.exists(project.vm_name) else VMState.STOPPED
        except VMNotFound:
            return VMState.STOPPED


# -- the whole job ---------------------------------------------------------------------------------


def setup(
    appliance: str | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    backend: str | None = None,
    cpus: int | None = None,
    memory_mib: int | None = None,
    context: Context | None = None,
    insecure: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    progress: SetupProgress = no_events,
    cancel: threading.Event | None = None,
    ctx: Workspace | None = None,
) -> SetupResult:
    """Make project ``name`` (default: the appliance's name) a running, contextualised VM of ``appliance``.

    Raises ``Cancelled`` when ``cancel`` is set: before the project is contextualised the project
    is removed again (a partial download stays for the next run); after, the project stays whole
    and a new run carries on.
    """
    ctx = ctx or Workspace.default()
    wanted = appliance or DEFAULT_APPLIANCE
    name = check_project_name(name or store_name(appliance or DEFAULT_APPLIANCE))
    warnings: list[str] = []
    with ctx.logbook.operation(name, "setup", appliance=wanted) as op:
        created = False
        if name not in ctx.projects.names():
            _check_cancel(cancel, "before it started")
            chosen = choose_backend(backend, progress)
            catalogs = Catalogs(ctx.home.config, insecure=insecure)
            found = catalogs.get(wanted)
            warnings.extend(catalogs.problems)
            resolved = found.resolve(version)
            _check_cancel(cancel, "before the download")
            pulled = _pull(found, resolved, ctx, chosen, insecure=insecure, progress=progress, cancel=cancel)
            _check_cancel(cancel, "before the project was created")
            try:
                _create(
                    name,
                    found,
                    resolved,
                    pulled.image.sha256,
                    chosen,
                    context or default_context(name),
                    cpus=cpus,
                    memory_mib=memory_mib,
                    ctx=ctx,
                    progress=progress,
                    warnings=warnings,
                )
                created = True
            except AlreadyExists:  # another setup made it meanwhile: carry on with it
                warnings.append(f"project {name} was created by another process meanwhile")
        files, project = projects.load(name, ctx)
        meta = _complete(ctx, project, progress)
        if not created:
            stored_context = _read_json(setup_dir(ctx, name) / CONTEXT_FILE)
            _check_existing(
                name, project, meta, appliance, backend, cpus, memory_mib, context, stored_context, warnings
            )
        before = _vm_state(project)
        if before in (VMState.RUNNING, VMState.TRANSITIONING):
            progress(SetupEvent("boot", f"the VM is already {before.value}"))
        else:
            _check_cancel(cancel, "before the VM was started")
            progress(SetupEvent("boot", "resuming the VM" if before == VMState.SAVED else "booting the VM"))
            how = running.up(name, ctx=ctx)
            progress(SetupEvent("boot", f"the VM {how}"))
        try:
            ready_by = _wait_ready(
                ctx, project, meta, timeout=ready_timeout, progress=progress, cancel=cancel
            )
        except Cancelled:
            raise Cancelled(
                f"stopped waiting for {name}; the project is set up and its VM keeps booting",
                fix=f"`vml setup --name {name}` waits again, `vml down {name}` stops it",
            ) from None
        ssh = ssh_access(name, ctx=ctx) if meta.get("ssh_port") else None
        stored = _read_json(setup_dir(ctx, name) / CONTEXT_FILE) or {}
        spec = files.vm_spec(project)
        result = SetupResult(
            project=name,
            vm_name=project.vm_name,
            backend=project.backend,
            appliance=str(meta.get("appliance")),
            version=str(meta.get("version")),
            created=created,
            vm_before="absent" if created else before.value,
            ready_by=ready_by,
            hostname=str(stored.get("hostname") or ""),
            console_log=str(spec.serial_log) if spec.serial_log else None,
            agent_socket=str(spec.channel_socket) if meta.get("agent") and spec.channel_socket else None,
            ssh=ssh,
            warnings=warnings,
        )
        op.message = ("created and booted" if created else f"was {before.value}") + (
            f", ready ({ready_by})" if ready_by else ""
        )
        progress(
            SetupEvent("done", f"{name} is running" + (f" and answers ({ready_by})" if ready_by else ""))
        )
        return result


def _check_existing(
    name: str,
    project: Project,
    meta: dict[str, Any],
    appliance: str | None,
    backend: str | None,
    cpus: int | None,
    memory_mib: int | None,
    context: Context | None,
    stored_context: dict[str, Any] | None,
    warnings: list[str],
) -> None:
    """A re-run on an existing project: refuse another appliance, note overrides that no longer apply."""
    if appliance and meta.get("appliance") and store_name(appliance) != store_name(str(meta["appliance"])):
        raise AlreadyExists(
            f"project {name!r} exists and runs {meta['appliance']}, not {appliance}",
            fix=f"choose another project name with --name, or `vml project rm {name}` first",
        )
    spec = VMSpec.from_dict(project.spec)
    ignored = []
    if backend and registry.canonical_name(backend) != project.backend:
        ignored.append(f"--backend (the project uses {project.backend})")
    if cpus and cpus != spec.cpus:
        ignored.append(f"--cpus (the VM has {spec.cpus})")
    if memory_mib and memory_mib != spec.memory_mib:
        ignored.append(f"--memory (the VM has {spec.memory_mib} MiB)")
    if context is not None and context_to_dict(context) != stored_context:
        ignored.append("--context (the seed was written when the project was created)")
    if ignored:
        warnings.append(f"project {name} exists; ignored: " + ", ".join(ignored))


def remove_setup_files(ctx: Workspace, project: str) -> None:
    """Forget what setup kept for a project (the project's own removal deletes it too)."""
    shutil.rmtree(setup_dir(ctx, project), ignore_errors=True)
