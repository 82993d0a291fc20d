"""Sharing states between vmlog users: export a state as a ``.vmlstate`` bundle, import one, mail one.

These are the service functions the CLI (``vml state export|import|send``) and the GUI both call.

Semantics the bundle format leaves to the project layer:

* An imported state keeps the sender's state id, so a later incremental bundle finds the state it
  builds on. On the recipient the state's parent is what its layers back onto: nothing (the base)
  for a full bundle, the ``since`` state for an incremental one.
* ``since.digest`` is :func:`state_digest` of the ``since`` state: a digest of the guest-visible
  bytes its disks show above the base (see :mod:`vmlog.bundles.content_digest`). The recipient
  computes it from its own copy, so an incremental bundle applies only onto identical content.
* A full bundle becomes a new project, or a new branch of ``--project`` if that project already
  exists on the same base; an incremental bundle goes into the project that holds its ``since`` state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import qemu_img, registry
from hypervisors.errors import HypervisorError
from vmlog import fsutil, locking
from vmlog.app import projects, states
from vmlog.appliances import download
from vmlog.bundles import (
    BaseImageRef,
    BundleReader,
    BundleRejected,
    BundleWriter,
    KnownSigners,
    LocalReference,
    SignerInfo,
    SigningKey,
    SinceRef,
    VerifiedBundle,
)
from vmlog.bundles.content_digest import content_digest
from vmlog.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound, VmlogError
from vmlog.logbook import Operation
from vmlog.logbook.book import who
from vmlog.mail import SmtpSettings, open_in_mail_client, send_bundle
from vmlog.projects import native_exchange, refs
from vmlog.projects.backends import open_backend
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import Project, State
from vmlog.projects.names import check_project_name
from vmlog.projects.overlay_chain import MEMORY_FILE
from vmlog.projects.sender_log import write_sender_logbook
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage
from vmlog.workspace import Workspace

_STATE_ID = re.compile(r"^[0-9a-f]{8,64}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
# What a memory image needs to resume, recorded in the manifest and compared on import.
MEMORY_STACK_KEYS = ("hypervisor", "domain_type", "qemu", "arch", "machine", "memory_mib", "cpus")
SUFFIX = ".vmlstate"


class Untrusted(VmlogError):
    """A bundle that is unsigned or signed by an unknown key, and the user did not accept it."""

    exit_code = 77  # EX_NOPERM


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportResult:
    path: Path
    size: int
    fits_mail: bool
    state_id: str
    since_id: str | None
    signer_fingerprint: str | None
    base_urls: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    project: str
    state_id: str
    state_name: str | None
    new_project: bool
    base_downloaded: bool
    signer: SignerInfo | None
    since_id: str | None
    sender: str
    memory_skipped: bool = False
    memory_note: str | None = None  # why the memory image was not imported


@dataclass(frozen=True)
class SendResult:
    export: ExportResult
    to: str
    via: str  # "smtp" or "client"
    message_id: str | None = None
    notes: list[str] = field(default_factory=list)


# -- shared plumbing -----------------------------------------------------------------------------
@contextmanager
def _mutation(ctx: Workspace, project: str, action: str, **args: Any) -> Iterator[Operation]:
    """The project's lock and a logbook row around a change, as every service mutation does."""
    with locking.project_locks(ctx.home.locks, [project], action):
        with ctx.logbook.operation(project, action, None, **args) as op:
            yield op


def _base_of(ctx: Workspace, project: Project, labels: Sequence[str]) -> StoredImage:
    """The one store image every exported disk's chain starts from."""
    shas = set()
    for label in labels:
        root = project.roots[label]
        if root.image_sha256 is None:
            raise InvalidInput(
                f"disk {label!r} of project {project.name!r} does not start from a base appliance (a blank"
                " scratch disk); bundles carry disks that sit on the shared base only",
                fix="copy the scratch disk's data to the system disk, or share it another way",
            )
        shas.add(root.image_sha256)
    if len(shas) != 1:
        raise InvalidInput(
            f"the disks of {project.name!r} sit on different base images; a bundle has one base"
        )
    sha = shas.pop()
    image = ctx.images.find(sha)
    if image is None:
        raise NotFound(
            f"the base image {sha[:16]}… of {project.name!r} is missing from the store", fix="vml doctor"
        )
    return image


def state_digest(files: ProjectFiles, project: Project, state: State) -> str:
    """The ``since`` digest of ``state``: its disks' content above the base, label by label."""
    return layers_digest(files, project, {label: files.layers.path(layer) for label, layer in state.layers.items()})


def layers_digest(files: ProjectFiles, project: Project, layers: dict[str, Path]) -> str:
    """The ``since`` digest of a state whose disks show what these qcow2 chain tops show (any backend)."""
    sha = hashlib.sha256()
    for label in sorted(layers):
        root, root_format = files.root_path(project, label)
        image_sha = project.roots[label].image_sha256 or ""
        digest = content_digest(layers[label], "qcow2", root, root_format, image_sha)
        sha.update(f"{label} {digest}\n".encode())
    return "state-sha256:" + sha.hexdigest()


def _portable_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The VM spec without this machine's paths (disks by label, no console files, no host folders)."""
    data = dict(spec)
    data["disks"] = [{**d, "path": d.get("label") or "disk"} for d in spec.get("disks", [])]
    data["serial_log"] = None
    data["channel_socket"] = None
    data["shared_folders"] = []
    return data


def _logbook_excerpt(ctx: Workspace, project: str, state_ids: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for sid in state_ids:
        rows.extend(e.to_dict() for e in ctx.logbook.entries(project=project, state=sid))
        rows.extend(n.to_dict() for n in ctx.logbook.notes(project=project, state=sid))
    return rows


def default_signer(ctx: Workspace) -> str:
    """The name a signature carries: the configured mail sender, else ``user@host``."""
    try:
        settings = SmtpSettings.load(ctx.home.config)
        return settings.sender or settings.user or who()
    except VmlogError:
        return who()


def _file_part(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip(".-")[:60] or "state"


# -- export --------------------------------------------------------------------------------------
def export_state(
    project_name: str | None,
    ref: str,
    out: Path | None = None,
    *,
    since: str | None = None,
    with_memory: bool = False,
    sign: bool = True,
    signer: str | None = None,
    base_urls: Sequence[str] = (),
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> ExportResult:
    """Write state ``ref`` as one ``.vmlstate`` file: its disks' delta against the base (or ``since``).

    ``base_urls`` adds download URLs of the base to those the image store knows, so a recipient
    without the base can fetch it. ``out`` may be a directory; the default is the working directory.
    """
    ctx = ctx or Workspace.default()
    name = projects.resolve_project(project_name, ctx)
    with _mutation(ctx, name, "state export", ref=ref, since=since, memory=with_memory) as op, ExitStack() as stack:
        files = ctx.projects.get(name)
        project = files.load()
        states = files.states()
        state = refs.resolve(states, project.current, ref)
        op.state_id = state.id
        native = native_exchange.is_native_project(project)
        image = _base_of(ctx, project, native_exchange.base_labels(project) if native else list(state.layers))
        if native:  # the states' disks, read from their snapshots as layers on the base
            base = native_exchange.native_base_of(files, project)
            layers_of = stack.enter_context(
                native_exchange.state_reader(ctx.home.cache, files, project, image, base)
            ).layers
        else:
            layers_of = lambda s: {label: files.layers.path(layer) for label, layer in s.layers.items()}  # noqa: E731
        urls = tuple(dict.fromkeys([*image.urls, *base_urls]))
        for url in base_urls:
            download.check_url(url, insecure=True)
        since_ref = None
        since_state = None
        if since is not None:
            since_state = refs.resolve(states, project.current, since)
            if since_state.id not in refs.ancestors(states, state.id)[1:]:
                raise InvalidInput(
                    f"state {since_state.label()} is not an ancestor of {state.label()}",
                    fix="give --since a state the exported state was saved after (see `vml state tree`)",
                )
            progress("computing the digest of the since state", 0.05)
            since_layers = layers_of(since_state)
            since_ref = SinceRef(since_state.id, layers_digest(files, project, since_layers), since_layers)
        memory = files.memory_path(state) if with_memory else None
        if with_memory and (memory is None or not memory.is_file()):
            raise InvalidInput(
                f"state {state.label()} has no memory image", fix="export without --with-memory"
            )
        path_ids = refs.ancestors(states, state.id)
        if since_state is not None:
            path_ids = path_ids[: path_ids.index(since_state.id)]
        key = None
        if sign:
            key = SigningKey.load_or_create(ctx.home.config, signer or default_signer(ctx))
        target = Path(out) if out is not None else Path.cwd()
        if target.is_dir():
            stem = f"{_file_part(project.name)}-{_file_part(state.name or state.id[:12])}"
            if since_state is not None:
                stem += f"-since-{since_state.id[:8]}"
            target = target / f"{stem}{SUFFIX}"
        ctx.home.cache.mkdir(parents=True, exist_ok=True)
        writer = BundleWriter(
            BaseImageRef(
                path=image.path,
                format=image.qemu_format,
                sha256=image.sha256,
                name=image.name,
                version=image.version,
                size=image.size,
                urls=urls,
            ),
            state={
                "id": state.id,
                "name": state.name,
                "message": state.message,
                "author": state.author,
                "created": state.created,
                "parent": state.parent,
                "project": project.name,
                "release_mounts": state.release_mounts,
            },
            vm_spec=_portable_spec(state.spec),
            logbook=_logbook_excerpt(ctx, name, path_ids),
            since=since_ref,
            memory=memory,
            memory_info=_memory_stack(project, state, memory) if memory else None,
            signing_key=key,
            workdir=ctx.home.cache,
        )
        progress("reading the state's disks", 0.1)
        for label, layer_path in layers_of(state).items():
            writer.add_disk(label, layer_path)
        summary = writer.write(target, progress=lambda message: progress(message, None))
        op.message = f"exported {state.label()} to {summary.path.name} ({summary.size / 1e6:.1f} MB)"
        return ExportResult(
            path=summary.path,
            size=summary.size,
            fits_mail=summary.fits_mail,
            state_id=state.id,
            since_id=since_state.id if since_state else None,
            signer_fingerprint=key.fingerprint if key else None,
            base_urls=urls,
        )


def _memory_stack(project: Project, state: State, memory: Path) -> dict[str, Any]:
    """The stack ``memory`` resumes on (see :data:`MEMORY_STACK_KEYS`), read by the state's backend."""
    backend_name = state.backend or project.backend
    if backend_name != project.backend:
        return {"backend": backend_name}
    with open_backend(project) as backend:
        try:
            return {"backend": backend_name, **backend.memory_image_stack(memory)}
        except HypervisorError:  # an importer then refuses the image: it cannot check the stack
            return {"backend": backend_name}


# -- import --------------------------------------------------------------------------------------
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


def _memory_fits(ctx: Workspace, project_name: str, recorded: dict[str, Any]) -> str | None:
    """Why the bundle's memory image cannot resume in project ``project_name`` here (None: it can)."""
    files = ctx.projects.get(project_name)
    project = files.load()
    try:
        with open_backend(project) as backend:
            here = backend.memory_stack(files.vm_spec(project))
    except HypervisorError as exc:
        return f"the {project.backend} backend cannot check it: {exc.message}"
    return memory_mismatch(recorded, {"backend": project.backend, **here})


def describe_signer(signer: SignerInfo | None) -> str:
    if signer is None:
        return "unsigned"
    known = f"known key, accepted as {signer.known_as}" if signer.known else "unknown key"
    return f"signed by {signer.name} ({known}, fingerprint {signer.fingerprint})"


def check_trust(
    bundle: VerifiedBundle, *, trust: bool, confirm: Callable[[VerifiedBundle], bool] | None = None
) -> None:
    """Go on if the signer's key is known, ``trust`` is set or ``confirm`` says yes; else ``Untrusted``."""
    if bundle.signer is not None and bundle.signer.known:
        return
    if trust or (confirm is not None and confirm(bundle)):
        return
    what = "is not signed" if bundle.signer is None else f"is {describe_signer(bundle.signer)}"
    raise Untrusted(
        f"{bundle.path.name} {what}; it was not imported",
        fix=f"check with the sender (state author {bundle.state.get('author')!r}), then run"
        f" `vml state import {bundle.path} --trust`"
        + (" (add --remember-signer to accept the key from now on)" if bundle.signer is not None else ""),
    )


def remember_signer(ctx: Workspace, signer: SignerInfo) -> str:
    """Accept ``signer``'s key: its bundles import without asking from now on."""
    return KnownSigners(ctx.home.config).add(signer.name, signer.public_key)


def _check_standalone(path: Path, fmt: str) -> None:
    """A downloaded base must not point at other files (a hostile qcow2 naming /etc/shadow as backing)."""
    try:
        details = qemu_img.info(path, fmt, limits=True)
    except HypervisorError as exc:
        raise IntegrityError(f"the downloaded base is not a valid {fmt} image: {exc.message}") from exc
    specific = details.get("format-specific", {}).get("data", {})
    if details.get("backing-filename") or specific.get("data-file"):
        raise BundleRejected(
            "backing", "the bundle's base image refers to another file (backing or data file)"
        )


def _ensure_base(
    ctx: Workspace, base: dict[str, Any], *, insecure: bool, progress: Progress
) -> tuple[StoredImage, bool]:
    """The base from the store, or downloaded from the manifest's URLs and verified by its sha256."""
    image = ctx.images.find(base["sha256"])
    downloaded = False
    if image is None:
        urls = list(base.get("urls") or [])
        name = str(base.get("name") or "")
        version = str(base.get("version") or "")
        if not urls:
            raise NotFound(
                f"the bundle needs base appliance {name or '?'} {version} (sha256 {base['sha256'][:16]}…),"
                " which is not in the image store, and names no URL to download it from",
                fix="pull that appliance first (vml appliance pull NAME), then import again",
            )
        total = base.get("size") or None

        def report(done: int, size: int | None) -> None:
            size = size or total
            progress(f"downloading the base ({done / 1e6:.0f} MB)", done / size if size else None)

        image = download.fetch(
            urls,
            ctx.images,
            name=name if _SAFE_PART.match(name) else "imported-base",
            version=version if _SAFE_PART.match(version) else "unknown",
            format=base["format"],
            digest=("sha256", base["sha256"]),
            size=base.get("size"),
            insecure=insecure,
            progress=report,
            downloads=ctx.home.downloads,
        )
        downloaded = True
    if image.qemu_format != base["format"]:
        raise InvalidInput(
            f"the store holds the base as {image.format}, the bundle needs {base['format']}",
            fix="ask the sender for a bundle made on the base as published",
        )
    if image.qemu_format != "raw":
        _check_standalone(image.path, image.qemu_format)
    return image, downloaded


def _unique_project_name(ctx: Workspace, wanted: str) -> str:
    base = _file_part(wanted) or "imported"
    if not base[0].isalnum():
        base = "imported-" + base
    base = base[:50]
    names = set(ctx.projects.names())
    candidate, n = base, 2
    while candidate in names:
        candidate, n = f"{base}-{n}", n + 1
    return check_project_name(candidate)


def _find_since(ctx: Workspace, state_id: str, project: str | None) -> str:
    candidates = [project] if project else ctx.projects.names()
    for name in candidates:
        if name in ctx.projects.names() and state_id in ctx.projects.get(name).states():
            return name
    where = f"project {project!r}" if project else "any project"
    raise NotFound(
        f"the bundle is incremental on state {state_id[:12]}, which {where} here does not have",
        fix="import the full bundle of that state first, or ask the sender for a full bundle"
        " (without --since)",
    )


def _spec_numbers(spec: dict[str, Any]) -> tuple[int, int]:
    """CPUs and memory from the sender's spec, within sane bounds (the rest of it is not trusted)."""
    cpus, memory = spec.get("cpus"), spec.get("memory_mib")
    cpus = cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and 1 <= cpus <= 64 else 1
    memory = (
        memory
        if isinstance(memory, int) and not isinstance(memory, bool) and 32 <= memory <= 1 << 20
        else 512
    )
    return cpus, memory


def _add_state(
    ctx: Workspace,
    name: str,
    reader: BundleReader,
    bundle: VerifiedBundle,
    image: StoredImage,
    *,
    describe: str,
    progress: Progress,
    memory: bool = False,
) -> State:
    """Materialise the bundle's layers into project ``name`` and record the state (caller holds the lock)."""
    files = ctx.projects.get(name)
    project = files.load()
    native = native_exchange.is_native_project(project)
    sid = bundle.state["id"]
    if sid in files.states():
        raise AlreadyExists(
            f"project {name!r} already has state {sid[:12]} (imported before?)",
            fix="restore it with `vml state restore`, or import into another project with --project",
        )
    labels = native_exchange.base_labels(project) if native else sorted(project.live)
    if set(bundle.labels) != set(labels):
        raise InvalidInput(
            f"the bundle has disks {', '.join(sorted(bundle.labels))}, project {name!r} has {', '.join(labels)}",
            fix="import into a new project (--project NEWNAME)",
        )
    if native:  # the state becomes a snapshot of the project's VM
        state = native_exchange.add_state(
            ctx.home.cache, files, reader, bundle, image, native_exchange.native_base_of(files, project),
            describe=describe, digest_of=layers_digest, progress=progress,
        )
        write_sender_logbook(files, state.id, bundle.logbook)
        return state
    states = files.states()
    for label in bundle.labels:
        if project.roots[label].image_sha256 != image.sha256:
            raise InvalidInput(
                f"project {name!r} does not sit on the bundle's base {image.name} {image.version}",
                fix="import into a new project (--project NEWNAME)",
            )
    since = bundle.since
    since_layers = since_digest = None
    parent = None
    if since is not None:
        since_state = states[since["state_id"]]
        progress("checking that the since state matches the sender's", 0.3)
        since_digest = state_digest(files, project, since_state)
        if since_digest != since["digest"]:
            raise BundleRejected(
                "since",
                f"state {since_state.label()} here differs from the sender's state it builds on",
                fix="ask the sender for a full bundle (without --since)",
            )
        since_layers = {label: files.layers.path(layer) for label, layer in since_state.layers.items()}
        parent = since_state.id
    names = {label: files.layers.new_name(label) for label in bundle.labels}
    staging = files.root / f".import-{secrets.token_hex(4)}"
    progress("writing the layers", 0.5)
    try:
        materialised = reader.materialise(
            staging,
            base=LocalReference(image.path, image.qemu_format, image.sha256),
            since_layers=since_layers,
            since_id=since["state_id"] if since else None,
            since_digest=since_digest,
            layer_name=lambda label: names[label],
        )
        files.layers.dir.mkdir(parents=True, exist_ok=True)
        for label, path in materialised.disks.items():
            dest = files.layers.path(names[label])
            fsutil.durable_rename(path, dest)
            backing, backing_format = files.layer_under(project, states, parent, label)
            qemu_img.rebase_unsafe(dest, backing, backing_format)
            fsutil.fsync_file(dest)
        if memory and materialised.memory is not None:
            files.state_dir(sid).mkdir(parents=True, exist_ok=True)
            fsutil.durable_rename(materialised.memory, files.state_dir(sid) / MEMORY_FILE)
        else:
            memory = False
    except BaseException:
        for layer in names.values():
            files.layers.remove(layer)
        shutil.rmtree(files.state_dir(sid), ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    wanted = bundle.state.get("name")
    state_name = wanted if isinstance(wanted, str) and wanted else None
    if state_name and any(s.name == state_name for s in states.values()):
        state_name = f"{state_name}-{sid[:8]}"
    mounts = bundle.state.get("release_mounts")
    created = bundle.state.get("created")
    state = State(
        id=sid,
        parent=parent,
        name=state_name,
        message=str(bundle.state.get("message") or "")[:2000] or f"imported ({describe})",
        author=str(bundle.state.get("author") or "unknown")[:200],
        created=float(created)
        if isinstance(created, (int, float)) and not isinstance(created, bool)
        else 0.0,
        layers=names,
        spec=dict(project.spec),
        release_mounts=[m for m in mounts if isinstance(m, dict)] if isinstance(mounts, list) else [],
        memory=MEMORY_FILE if memory else None,
        backend=project.backend if memory else None,
    )
    files.write_state(state)
    write_sender_logbook(files, sid, bundle.logbook)
    return state


def open_bundle(bundle_path: Path, *, ctx: Workspace | None = None) -> BundleReader:
    """A reader on ``bundle_path`` that has verified the whole file (nothing written).

    Pass it to :func:`import_state` to import without a second verification pass, e.g. after
    showing the user who signed it.
    """
    ctx = ctx or Workspace.default()
    reader = BundleReader(Path(bundle_path), known_signers=KnownSigners(ctx.home.config))
    reader.verify()
    return reader


def import_state(
    bundle: Path | BundleReader,
    *,
    project: str | None = None,
    trust: bool = False,
    confirm: Callable[[VerifiedBundle], bool] | None = None,
    insecure: bool = False,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> ImportResult:
    """Verify a bundle completely, then rebuild its state here (see the module docstring for where).

    Nothing is written before every digest checked out and the signer was accepted (a known key,
    ``trust``, or ``confirm(bundle)`` returning True). A missing base is downloaded from the
    manifest's URLs and verified. The state keeps the sender's id. ``backend`` (and its options)
    is the hypervisor of a new project (default ``kvm``); on VirtualBox and VMware the state
    becomes a native snapshot (see :mod:`vmlog.projects.native_exchange`).
    """
    ctx = ctx or Workspace.default()
    progress("verifying the bundle", 0.05)
    reader = bundle if isinstance(bundle, BundleReader) else open_bundle(bundle, ctx=ctx)
    bundle_path = reader.path
    bundle = reader.verify()
    sid = bundle.state.get("id")
    if not isinstance(sid, str) or not _STATE_ID.match(sid):
        raise BundleRejected("manifest", "the bundle's state id is not 8 to 64 lowercase hex digits")
    check_trust(bundle, trust=trust, confirm=confirm)
    sender = str(bundle.state.get("author") or "unknown")
    describe = describe_signer(bundle.signer)
    since = bundle.since
    if since is not None:
        target, create = _find_since(ctx, since["state_id"], project), False
    elif project and project in ctx.projects.names():
        target, create = project, False
    else:
        wanted = project or str(bundle.state.get("project") or bundle.state.get("name") or "imported")
        target, create = (
            (check_project_name(project) if project else _unique_project_name(ctx, wanted)),
            True,
        )
    if backend and not create:
        existing = ctx.projects.get(target).load().backend
        if registry.canonical_name(backend) != existing:
            raise InvalidInput(
                f"project {target!r} runs on {existing}, not {backend}",
                fix=f"import without --backend, or into a new project (--project NEWNAME --backend {backend})",
            )
    progress("finding the base appliance", 0.1)
    image, downloaded = _ensure_base(ctx, bundle.base, insecure=insecure, progress=progress)
    if create:
        cpus, memory = _spec_numbers(bundle.manifest.get("vm_spec") or {})
        projects.new_project(
            target, image.sha256, backend=backend or "kvm", backend_options=backend_options,
            cpus=cpus, memory_mib=memory, ctx=ctx,
        )
    memory_note = None
    try:
        if bundle.manifest.get("memory") is not None:
            progress("checking the memory image's stack", 0.15)
            memory_note = _memory_fits(ctx, target, bundle.manifest["memory"])
        args = {
            "file": bundle_path.name,
            "sender": sender,
            "signer": bundle.signer.name if bundle.signer else None,
        }
        if bundle.signer is not None:
            args.update(fingerprint=bundle.signer.fingerprint, signer_known=bundle.signer.known)
        with _mutation(ctx, target, "state import", **args) as op:
            op.state_id = sid
            state = _add_state(
                ctx, target, reader, bundle, image, describe=describe, progress=progress,
                memory=bundle.manifest.get("memory") is not None and memory_note is None,
            )
            op.message = f"imported {state.label()} from {sender} ({describe})" + (
                f", on top of {since['state_id'][:8]}" if since else ""
            )
        if create:
            states.restore_state(target, sid, discard=True, ctx=ctx)
    except BaseException:
        if create:
            try:
                projects.remove_project(target, ctx=ctx)
            except VmlogError:
                pass
        raise
    progress("imported", 1.0)
    return ImportResult(
        project=target,
        state_id=sid,
        state_name=state.name,
        new_project=create,
        base_downloaded=downloaded,
        signer=bundle.signer,
        since_id=since["state_id"] if since else None,
        sender=sender,
        memory_skipped=memory_note is not None,
        memory_note=memory_note,
    )


def inspect_bundle(bundle_path: Path, *, ctx: Workspace | None = None) -> dict[str, Any]:
    """What a bundle holds and who signed it, after full verification (nothing is written)."""
    ctx = ctx or Workspace.default()
    return describe_bundle(open_bundle(bundle_path, ctx=ctx).verify(), ctx=ctx)


def describe_bundle(bundle: VerifiedBundle, *, ctx: Workspace | None = None) -> dict[str, Any]:
    """A verified bundle as plain data: state, base (and whether the store has it), disks, signer."""
    ctx = ctx or Workspace.default()
    doc = bundle.manifest
    return {
        "state": bundle.state,
        "base": {k: doc["base"][k] for k in ("name", "version", "sha256", "size", "format", "urls")},
        "base_in_store": ctx.images.find(doc["base"]["sha256"]) is not None,
        "since": bundle.since,
        "disks": doc["disks"],
        "memory": doc.get("memory") is not None,
        "signer": dataclasses.asdict(bundle.signer) if bundle.signer else None,
        "signature": describe_signer(bundle.signer),
    }


# -- send ----------------------------------------------------------------------------------------
def send_state(
    project_name: str | None,
    ref: str,
    to: str,
    *,
    since: str | None = None,
    with_memory: bool = False,
    client: bool = False,
    sign: bool = True,
    base_urls: Sequence[str] = (),
    settings: SmtpSettings | None = None,
    outbox: Path | None = None,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> SendResult:
    """Export state ``ref`` and mail it to ``to`` (SMTP settings), or hand it to the mail client.

    A bundle over the SMTP size limit is refused before connecting; it stays in the outbox, and
    the error says how to share it instead.
    """
    ctx = ctx or Workspace.default()
    if not client:
        settings = settings or SmtpSettings.load(ctx.home.config)
    outbox = Path(outbox) if outbox is not None else ctx.home.cache / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    exported = export_state(
        project_name,
        ref,
        outbox,
        since=since,
        with_memory=with_memory,
        sign=sign,
        base_urls=base_urls,
        ctx=ctx,
        progress=progress,
    )
    name = projects.resolve_project(project_name, ctx)
    with ctx.logbook.operation(name, "state send", exported.state_id, to=to, client=client) as op:
        if client:
            progress("opening the mail client", 0.9)
            open_in_mail_client(exported.path, to)
            op.message = f"handed {exported.path.name} to the mail client for {to}"
            return SendResult(exported, to, "client", notes=[f"the bundle is at {exported.path}"])
        assert settings is not None
        if exported.size > settings.size_limit:
            raise InvalidInput(
                f"the bundle is {exported.size / 1e6:.1f} MB,"
                f" over the {settings.size_limit / 1e6:.0f} MB mail limit;"
                f" it was kept at {exported.path}",
                fix="share that file another way (a shared folder or a file-transfer link), or send an"
                " incremental bundle with --since STATE the recipient already has",
            )
        progress(f"mailing {exported.path.name} to {to}", 0.9)
        message_id = send_bundle(exported.path, to, settings)
        op.message = f"mailed {exported.path.name} ({exported.size / 1e6:.1f} MB) to {to}"
    try:
        os.unlink(exported.path)
    except OSError:
        pass
    return SendResult(exported, to, "smtp", message_id)
