"""The releases a project has mounted: host mounts shared into its VM, or a CernVM guest's own client.

A project keeps its mounted releases in ``releases.json`` next to ``project.json``, each pinned to
an exact revision. ``vml release mount --project`` adds one; saving a state copies the list into
the state; restoring a state mounts the same revisions again and shares them into the VM.

How a release reaches the guest depends on the guest:

* a guest with shared folders (virtiofs with libvirt) sees the host's FUSE mount of the release
  under a ``rel-*`` tag; a guest with the vmlog agent (the test appliance) mounts it at its mount
  path at once, others at boot (the command is shown);
* a CernVM guest (catalog context ``cernvm``) with a CernVM-FS source runs its own client: the
  client configuration, pinned to the revision's root catalog, goes into the contextualisation
  seed and takes effect at the next boot.

QEMU 7.2 cannot save the memory of a VM with virtiofs shares, so a suspend or a memory state of a
libvirt project with shared releases is refused with the fix (unmount the releases, or shut down).
Adding a virtiofs share to a running libvirt VM works only if the VM was booted with shared memory
(i.e. already had a shared folder); otherwise the share is added at the next boot, or at once with
``restart``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hypervisors.base import Hypervisor, VMState
from hypervisors.errors import HypervisorError
from hypervisors.spec import SharedFolder, VMSpec
from vmlog import fsutil
from vmlog.errors import InvalidInput, NotFound, VmlogError
from vmlog.paths import VmlogHome
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles
from vmlog.releases import mounts
from vmlog.releases.cvmfs_source import CvmfsSource
from vmlog.releases.guest_share import DEFAULT_GUEST_ROOT, cvmfs_client_files, mount_command_for, share_tag
from vmlog.releases.model import Release, ReleaseSource
from vmlog.releases.sources import load_sources

RELEASES_FILE = "releases.json"
SHARE_PREFIX = "rel-"
GUEST = ("share", "cvmfs")
AGENT_BOOT_TIMEOUT = 300.0
SETUP_FILE = Path("setup") / "setup.json"
CONTEXT_FILE = Path("setup") / "context.json"
SEED_FILE = Path("setup") / "seed.iso"


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
    guest: str = ""  # "mounted", "next boot", "seed", "unmounted", "" (nothing to do in the guest)
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "releases": [r.to_dict() for r in self.releases],
            "guest": self.guest,
            "messages": list(self.messages),
            "warnings": list(self.warnings),
        }


# -- the project's record ----------------------------------------------------------------------
def project_releases(files: ProjectFiles) -> list[ProjectRelease]:
    path = files.root / RELEASES_FILE
    if not path.is_file():
        return []
    return [ProjectRelease.from_dict(item) for item in fsutil.read_json(path)]


def write_project_releases(files: ProjectFiles, items: list[ProjectRelease]) -> None:
    fsutil.atomic_write_json(files.root / RELEASES_FILE, [item.to_dict() for item in items])


def state_releases(state: State) -> list[ProjectRelease]:
    """The releases a state recorded (records that cannot be read are skipped: they came from a bundle)."""
    found = []
    for item in state.release_mounts:
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


# -- guest facts ------------------------------------------------------------------------------
def guest_facts(files: ProjectFiles, project: Project) -> dict[str, Any]:
    """The context kind of the project's appliance and whether its guest runs the vmlog agent."""
    try:
        meta = json.loads((files.root / SETUP_FILE).read_text())
    except (OSError, ValueError):
        meta = {}
    from vmlog.appliances.catalog import store_name
    from vmlog.testappliance.build import APPLIANCE_NAME

    agent = bool(meta.get("agent")) if "agent" in meta else project.base.get("name") == store_name(APPLIANCE_NAME)
    return {"context": str(meta.get("context") or "none"), "agent": agent}


def guest_kind_for(files: ProjectFiles, project: Project, source: ReleaseSource) -> str:
    """``cvmfs`` for a CernVM guest and a CernVM-FS source (native client), else ``share``."""
    if isinstance(source, CvmfsSource) and guest_facts(files, project)["context"] == "cernvm":
        return "cvmfs"
    return "share"


def configured_source(item: ProjectRelease, where: VmlogHome | None = None) -> ReleaseSource | None:
    """The user's configured source that serves ``item`` (same kind, URL and key), or None.

    Releases are only mounted from sources the user added: a state from a bundle cannot make vmlog
    trust a key it carries.
    """
    url = str(item.source.get("url", "")).rstrip("/")
    for source in load_sources(where):
        if source.kind != item.source.get("kind") or source.url != url:
            continue
        if isinstance(source, CvmfsSource):
            if source.master_key_pem.strip() != str(item.source.get("master_key_pem", "")).strip():
                continue
        return source
    return None


def missing_source_warning(item: ProjectRelease, project: str) -> str:
    return (
        f"release {item.describe()} from {item.source.get('url')} is needed but that source is not"
        f" configured here; add it (`vml release source add {item.source.get('url')}`), then"
        f" `vml release mount {item.release.path} --project {project} --revision {item.release.revision}`"
    )


# -- CernVM contextualisation -----------------------------------------------------------------
def cernvm_release_files(items: list[ProjectRelease], proxy: str | None) -> dict[str, str]:
    """CernVM-FS client files for the ``cvmfs`` releases, one pinned repository each."""
    from vmlog.releases.sources import source_from_config

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


def cernvm_context(context: Any, items: list[ProjectRelease]) -> Any:
    """``context`` (a :class:`vmlog.context.model.Context`) plus the pinned CernVM-FS client files.

    The instance id names the pins, so cloud-init writes the files again when a pin changes.
    """
    from vmlog.context.model import ExtraFile

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
    from vmlog.context.model import Context
    from vmlog.context.seed import write_seed

    try:
        stored = json.loads((files.root / CONTEXT_FILE).read_text())
    except (OSError, ValueError):
        stored = None
    context = Context.from_dict(stored) if stored else Context(hostname=_hostname(project.name))
    seed = next((Path(d["path"]) for d in project.spec.get("disks", []) if d.get("label") == "seed"), None)
    if seed is None:
        raise NotFound(
            f"project {project.name!r} has no contextualisation seed to carry the CernVM-FS configuration",
            fix="set the project up with `vml setup` (CernVM appliances get a seed)",
        )
    return write_seed("cernvm", cernvm_context(context, items), seed)


def _hostname(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in name).strip("-")[:63]
    return cleaned or "vmlog"


# -- the VM side ------------------------------------------------------------------------------
def _filesystem_xml(folder: SharedFolder) -> str:
    fs = ET.Element("filesystem", {"type": "mount", "accessmode": "passthrough"})
    ET.SubElement(fs, "driver", {"type": "virtiofs"})
    ET.SubElement(fs, "source", {"dir": str(Path(folder.host_path).absolute())})
    ET.SubElement(fs, "target", {"dir": folder.tag})
    return ET.tostring(fs, encoding="unicode")


def hotplug_share(backend: Hypervisor, vm_name: str, folder: SharedFolder, *, attach: bool) -> str | None:
    """Add (or remove) a share on the running VM; None if done, else why not (the hypervisor's words).

    The backend contract has no shared-folder hot-plug yet, so this speaks to libvirt with ``virsh``.
    """
    if backend.name != "kvm":
        return f"the {backend.name} backend cannot change the shared folders of a running VM"
    virsh = shutil.which("virsh")
    if virsh is None:
        return "virsh is not installed (apt-get install libvirt-clients)"
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as xml:
        xml.write(_filesystem_xml(folder))
        xml.flush()
        verb = "attach-device" if attach else "detach-device"
        args = [virsh, "-c", str(getattr(backend, "uri", "qemu:///system")), verb, vm_name, xml.name, "--live"]
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip().removeprefix("error: ").replace("\n", " ")


def _vm_state(backend: Hypervisor, vm_name: str) -> VMState:
    try:
        return backend.state(vm_name) if backend.exists(vm_name) else VMState.STOPPED
    except HypervisorError:
        return VMState.STOPPED


def guest_run(files: ProjectFiles, project: Project, commands: list[str], *, timeout: float) -> None:
    """Run ``commands`` in the guest through the vmlog agent, waiting up to ``timeout`` for it."""
    from vmlog.testappliance.agent import GuestChannel

    socket = project.spec.get("channel_socket")
    if not socket:
        raise NotFound(f"project {project.name!r} has no guest agent channel", fix="mount it in the guest by hand")
    with GuestChannel(Path(socket)) as guest:
        guest.wait_ready(timeout)
        for command in commands:
            guest.check_output(command, timeout=120)


def guest_mount_commands(items: list[ProjectRelease]) -> list[str]:
    """Shell commands that mount ``items``' shares in a Linux guest (a mounted one is left alone)."""
    return [
        f"mountpoint -q {shlex.quote(item.guest_path)} || ({mount_command_for(item.name, item.guest_path)})"
        for item in items
        if item.guest == "share"
    ]


def host_mountpoints(project: str, where: VmlogHome | None = None) -> dict[str, Path]:
    return {h.name: h.mountpoint for h in mounts.running_mounts(where, project=project)}


def ensure_host_mounts(
    files: ProjectFiles, project: Project, where: VmlogHome | None = None
) -> tuple[list[ProjectRelease], list[str]]:
    """Mount on the host the project's shared releases that are not mounted (e.g. after a host reboot).

    Returns the releases that are mounted and warnings for those that could not be.
    """
    mounted, warnings = [], []
    running = host_mountpoints(project.name, where)
    for item in project_releases(files):
        if item.guest != "share":
            mounted.append(item)
            continue
        if item.name in running:
            mounted.append(item)
            continue
        source = configured_source(item, where)
        if source is None:
            warnings.append(missing_source_warning(item, project.name))
            continue
        try:
            mounts.remount_pinned([{**item.to_dict(), "source_object": source}], where, project=project.name)
        except VmlogError as exc:
            warnings.append(f"release {item.describe()} cannot be mounted: {exc.message}")
            continue
        mounted.append(item)
    return mounted, warnings


def _mkdir_share_dirs(project: Project) -> None:
    """An unmounted release's share still needs its directory, or the VM cannot start at all."""
    for folder in VMSpec.from_dict(project.spec).shared_folders:
        if folder.tag.startswith(SHARE_PREFIX) and not Path(folder.host_path).exists():
            Path(folder.host_path).mkdir(parents=True, exist_ok=True)


def before_boot(files: ProjectFiles, project: Project, where: VmlogHome | None = None) -> list[str]:
    """Before a cold boot: the project's shared releases are mounted on the host (warnings otherwise)."""
    if not (files.root / RELEASES_FILE).is_file():
        return []
    _mounted, warnings = ensure_host_mounts(files, project, where)
    _mkdir_share_dirs(project)
    return warnings


def after_boot(files: ProjectFiles, project: Project) -> list[str]:
    """After a cold boot: mount the shared releases in the guest (through the agent, if it has one)."""
    items = [item for item in project_releases(files) if item.guest == "share"]
    if not items:
        return []
    commands = guest_mount_commands(items)
    if not guest_facts(files, project)["agent"]:
        return ["mount the releases in the guest: " + "; ".join(commands)]
    try:
        guest_run(files, project, commands, timeout=AGENT_BOOT_TIMEOUT)
    except VmlogError as exc:
        return [f"the releases could not be mounted in the guest: {exc.message}"]
    return []


def apply_state(
    files: ProjectFiles, target: State, *, where: VmlogHome | None = None
) -> ReleaseOutcome:
    """Make the project's releases those ``target`` recorded, at the same revisions (the VM is stopped).

    Releases whose source is not configured here are left out with a warning saying what is needed.
    """
    project = files.load()
    outcome = ReleaseOutcome()
    wanted = state_releases(target)
    current = project_releases(files)
    if not wanted and not current:
        return outcome
    running = host_mountpoints(project.name, where)
    for item in current:
        same = any(w.name == item.name and w.release.pin == item.release.pin for w in wanted)
        if item.guest == "share" and item.name in running and not same:
            mounts.umount(item.name, where, project=project.name, lazy=True)
            outcome.messages.append(f"unmounted {item.describe()}")
    for item in wanted:
        source = configured_source(item, where)
        if source is None:
            outcome.warnings.append(missing_source_warning(item, project.name))
            continue
        if item.guest == "share":
            try:
                mounts.remount_pinned([{**item.to_dict(), "source_object": source}], where, project=project.name)
            except VmlogError as exc:
                outcome.warnings.append(f"release {item.describe()} cannot be mounted: {exc.message}")
                continue
        outcome.releases.append(item)
        outcome.messages.append(f"mounted {item.describe()}")
    write_project_releases(files, outcome.releases)
    project.spec = with_release_shares(project.spec, outcome.releases, host_mountpoints(project.name, where))
    files.write(project)
    if any(item.guest == "cvmfs" for item in [*current, *wanted]):
        write_cernvm_seed(files, project, outcome.releases)
        outcome.guest = "seed"
    return outcome
