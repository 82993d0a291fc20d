"""Sharing states between vmlog users: export a state as a ``.vmlstate`` bundle, import one, mail one, inspect one.

The use cases the CLI (``vml state export|import|send|inspect``) and the GUI call. Each is a short
sequence over the projects domain: the snapshot model's driver reads and writes the states' disks
(:meth:`~vmlog.projects.driver.StateDriver.reading_states`, ``add_state``), and
:mod:`vmlog.projects.state_export` / :mod:`vmlog.projects.state_import` hold the mechanics and the
rules of where an imported state goes.

``since.digest`` is :func:`state_digest` of the ``since`` state: a digest of the guest-visible bytes
its disks show above the base. The recipient computes it from its own copy, so an incremental bundle
applies only onto identical content.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog.app import projects, states
from vmlog.app.backend_names import typed_backend
from vmlog.app.import_project import create_imported_project, releases_not_mounted
from vmlog.app.refusals import refusal_logged
from vmlog.app.session import session
from vmlog.appliances import download
from vmlog.bundles import BundleReader, KnownSigners, SignerInfo, SigningKey, VerifiedBundle
from vmlog.bundles.writer import MAIL_ATTACHMENT_LIMIT
from vmlog.checks import travel as checks_travel
from vmlog.errors import InvalidInput, VmlogError
from vmlog.mail import SmtpSettings, fits_mail, message_size, open_in_mail_client, send_bundle
from vmlog.projects import refs
from vmlog.projects import trust as trust_rules
from vmlog.projects.backends import files_driver
from vmlog.projects.bundle_base import base_of, ensure_base
from vmlog.projects.digest import layers_digest, state_digest
from vmlog.projects.driver import IncomingState, Progress, no_progress, private_work_dir
from vmlog.projects.leftovers import export_recorded
from vmlog.projects.memory_stack import MEMORY_STACK_KEYS, memory_fits, memory_mismatch
from vmlog.projects.model import State
from vmlog.projects.remote_exchange import add_state_through_copy, local_copy
from vmlog.projects.state_export import (
    SUFFIX,
    Outgoing,
    bundle_path,
    carried_states,
    logbook_excerpt,
    memory_of,
    new_writer,
    since_state,
)
from vmlog.projects.state_import import (
    add_bundle_state,
    check_state_id,
    choose_target,
    prepared_layers,
    spec_numbers,
)
from vmlog.projects.trust import Untrusted, default_signer, describe_signer, remember_signer
from vmlog.workspace import Workspace, workspace

__all__ = [
    "MEMORY_STACK_KEYS", "SUFFIX", "BundleInfo", "ExportResult", "ImportResult", "SendResult", "Untrusted",
    "check_trust", "default_signer", "describe_bundle", "describe_signer", "export_state", "import_state",
    "inspect_bundle", "layers_digest", "memory_mismatch", "open_bundle", "remember_signer", "send_state",
    "state_digest",
]


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
    releases_not_mounted: list[str] = field(default_factory=list)  # the state's releases whose source is missing
    ssh_port: int | None = None  # a new project's forwarded SSH port
    user: str | None = None  # the user a new project's seed gives the importer
    warnings: list[str] = field(default_factory=list)  # what the importer must know (shown with the result)


@dataclass(frozen=True)
class SendResult:
    export: ExportResult
    to: str
    via: str  # "smtp" or "client"
    message_id: str | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _disk_space(where: Path) -> Iterator[None]:
    """A full disk (or quota) while writing is said as such, with the fix, instead of a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        raise VmlogError(
            f"not enough free disk space to write {exc.filename or where} ({os.strerror(exc.errno)});"
            " nothing was kept",
            fix=f"free space on the disk holding {where} (`vml appliance rm` of unused images helps), then run"
            " the command again",
        ) from None


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
    ctx = workspace(ctx)
    name = projects.resolve_project(project_name, ctx)
    with session(ctx, name, "state export", ref=ref, since=since, memory=with_memory) as op, \
            _disk_space(Path(out) if out is not None else Path.cwd()):
        files = ctx.projects.get(name)
        project = files.load()
        all_states = files.states()
        state = refs.resolve(all_states, project.current, ref)
        op.state_id = state.id
        with files_driver(project) as driver, private_work_dir(ctx.home.cache) as work:
            image = base_of(ctx.images, project, driver.exchanged_labels(project))
            urls = tuple(dict.fromkeys([*image.urls, *base_urls]))
            for url in base_urls:
                download.check_url(url, insecure=True)
            since_here = since_state(all_states, project.current, state, since)
            if project.remote:  # the writer reads local files: the states' layers come down from the host first
                files = local_copy(files, [s for s in (state, since_here) if s is not None], work, progress)
                project = files.load()
            outgoing = Outgoing(files, project, state, image, since_here)
            memory = memory_of(outgoing, with_memory)
            key = SigningKey.load_or_create(ctx.home.config, signer or default_signer(ctx)) if sign else None
            target = bundle_path(out, project, state, outgoing.since)
            logbook = logbook_excerpt(ctx.logbook, name, carried_states(all_states, state, outgoing.since))
            with driver.reading_states(files, project, image, work) as layers_of:
                writer = new_writer(
                    outgoing, layers_of, urls=urls, logbook=logbook, memory=memory, key=key,
                    workdir=ctx.home.cache, progress=progress, checks=checks_travel.member_bytes(files.root),
                )
                with export_recorded(ctx.home.cache, target):
                    summary = writer.write(target, progress=lambda message: progress(message, None))
        op.message = f"exported {state.label()} to {summary.path.name} ({summary.size / 1e6:.1f} MB)"
        return ExportResult(
            path=summary.path,
            size=summary.size,
            fits_mail=fits_mail(summary.size, MAIL_ATTACHMENT_LIMIT),
            state_id=state.id,
            since_id=outgoing.since.id if outgoing.since else None,
            signer_fingerprint=key.fingerprint if key else None,
            base_urls=urls,
        )


# -- import --------------------------------------------------------------------------------------
def check_trust(
    bundle: VerifiedBundle, *, trust: bool, confirm: Callable[[VerifiedBundle], bool] | None = None,
    ctx: Workspace | None = None,
) -> None:
    """Go on if the signer is known, ``trust`` is set or ``confirm`` says yes; else ``Untrusted``, logged as refused."""
    with refusal_logged(workspace(ctx).logbook, None, file=bundle.path.name):
        trust_rules.check_trust(bundle, trust=trust, confirm=confirm)


def open_bundle(bundle_path: Path, *, ctx: Workspace | None = None, log_refusal: bool = True) -> BundleReader:
    """A reader on ``bundle_path`` that has verified the bundle's header (nothing written).

    The manifest, its signature, the logbook and checks members and every member's name, type and
    size are checked; the disk members' digests are checked by the import, in the one pass that
    writes them. Pass it to :func:`import_state`, e.g. after showing the user who signed it. A refused
    bundle is one ``state import`` logbook row saying so (``log_refusal=False`` for a mere look, as
    ``inspect_bundle`` takes).
    """
    ctx = workspace(ctx)
    reader = BundleReader(Path(bundle_path), known_signers=KnownSigners(ctx.home.config))
    if not log_refusal:
        reader.verify_header()
        return reader
    with refusal_logged(ctx.logbook, None, file=Path(bundle_path).name):
        reader.verify_header()
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
    base_file: Path | None = None,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> ImportResult:
    """Verify a bundle completely, then rebuild its state here (see :mod:`vmlog.projects.state_import` for where).

    Nothing is written before every digest checked out and the signer was accepted (a known key,
    ``trust``, or ``confirm(bundle)`` returning True). A missing base is downloaded from the
    manifest's URLs and verified. The state keeps the sender's id. ``backend`` (and its options)
    is the hypervisor of a new project (default ``kvm``); on VirtualBox and VMware the state
    becomes a native snapshot (see :mod:`vmlog.projects.native_exchange`).
    """
    ctx = workspace(ctx)
    backend = typed_backend(backend) if backend else None
    path = bundle.path if isinstance(bundle, BundleReader) else Path(bundle)
    with contextlib.ExitStack() as stack, _disk_space(ctx.home.data):
        with refusal_logged(ctx.logbook, project, file=path.name):
            progress("verifying the bundle", 0.05)
            reader = bundle if isinstance(bundle, BundleReader) else open_bundle(bundle, ctx=ctx, log_refusal=False)
            verified = reader.verify_header()  # the layers' digests are checked while they are written
            sid = check_state_id(verified)
            if verified.checks is not None:  # malformed checks refuse the bundle before anything is written
                checks_travel.parse_member(verified.checks)
            trust_rules.check_trust(verified, trust=trust, confirm=confirm)
            target = choose_target(ctx.projects, verified, project, backend)
            progress("finding the base appliance", 0.1)
            image, downloaded = ensure_base(ctx.images, ctx.home.downloads, verified.base, insecure=insecure,
                                            progress=progress, base_file=base_file)
            if target.create:  # every check of the layers runs before the project exists
                progress("checking the layers", 0.15)
                reader = stack.enter_context(prepared_layers(reader, image, ctx.home.cache, target.name))
        made = None
        if target.create:
            cpus, memory_mib = spec_numbers(verified.manifest.get("vm_spec") or {})
            made = create_imported_project(target.name, image, sid, backend=backend or "kvm",
                                           backend_options=backend_options, cpus=cpus, memory_mib=memory_mib,
                                           with_memory=verified.manifest.get("memory") is not None, ctx=ctx)
        missing = releases_not_mounted(verified.state.get("release_mounts"), ctx)
        try:
            memory_note = None
            if verified.manifest.get("memory") is not None:
                progress("checking the memory image's stack", 0.15)
                memory_note = _remote_memory_note(ctx, target.name) or memory_fits(
                    ctx.projects.get(target.name), verified.manifest["memory"]
                )
            incoming = IncomingState(reader, verified, image, describe_signer(verified.signer),
                                     memory=verified.manifest.get("memory") is not None and memory_note is None)
            state = _record_import(ctx, target.name, incoming, progress, missing)
            if target.create:
                states.restore_state(target.name, sid, discard=True, ctx=ctx)
        except BaseException:
            if target.create:
                try:
                    projects.remove_project(target.name, ctx=ctx)
                except VmlogError:
                    pass
            raise
    progress("imported", 1.0)
    return ImportResult(
        project=target.name, state_id=sid, state_name=state.name, new_project=target.create,
        base_downloaded=downloaded, signer=verified.signer, sender=_sender(verified),
        since_id=verified.since["state_id"] if verified.since else None,
        memory_skipped=memory_note is not None, memory_note=memory_note, releases_not_mounted=missing,
        ssh_port=made.ssh_port if made else None, user=made.user if made else None,
        warnings=[*(made.warnings if made else []), *(f"release {line} was not re-mounted" for line in missing)],
    )


def _remote_memory_note(ctx: Workspace, name: str) -> str | None:
    """Why a memory image is not imported into project ``name``: it lives on a remote host (None: it does not)."""
    project = ctx.projects.get(name).load()
    if not project.remote:
        return None
    return f"{name} lives on {project.uri}, where vmlog brings no memory image yet"


def _sender(bundle: VerifiedBundle) -> str:
    return str(bundle.state.get("author") or "unknown")


def _record_import(
    ctx: Workspace, name: str, incoming: IncomingState, progress: Progress, missing: list[str]
) -> State:
    """The bundle's state recorded in project ``name`` in one logbook row, under the project's lock.

    ``missing`` are the state's releases that cannot be re-mounted here: the row names them.
    """
    bundle = incoming.bundle
    args: dict[str, Any] = {
        "file": bundle.path.name, "sender": _sender(bundle), "signer": bundle.signer.name if bundle.signer else None,
    }
    if missing:
        args["releases_not_mounted"] = missing
    if bundle.signer is not None:
        args.update(fingerprint=bundle.signer.fingerprint, signer_known=bundle.signer.known)
    with session(ctx, name, "state import", **args) as op:
        op.state_id = bundle.state["id"]
        files = ctx.projects.get(name)
        with files_driver(files.load()) as driver, private_work_dir(ctx.home.cache) as work:
            if files.load().remote:  # written here as for a local project, then uploaded to the host
                state = add_state_through_copy(
                    files, lambda view, inc, **kw: add_bundle_state(view, driver, inc, **kw), incoming, work=work,
                    progress=progress,
                )
            else:
                state = add_bundle_state(files, driver, incoming, work=work, progress=progress)
        merged = checks_travel.merge_member(files.root, bundle.checks) if bundle.checks is not None else None
        op.message = f"imported {state.label()} from {_sender(bundle)} ({incoming.describe})" + (
            f", on top of {bundle.since['state_id'][:8]}" if bundle.since else ""
        ) + "".join(f"; release {line} was not re-mounted" for line in missing) + (
            f"; {merged.describe()}" if merged else ""
        )
    return state


# -- inspect -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleInfo:
    """What a verified bundle holds: the sender's state record, its base, disks, and who signed it."""

    state: dict[str, Any]  # the manifest's state record (untrusted text: print it verbatim)
    base: dict[str, Any]  # name, version, sha256, size, format, urls
    base_in_store: bool
    since: dict[str, Any] | None  # state_id and digest of the state an incremental bundle builds on
    disks: list[dict[str, Any]]  # label, changed_bytes, ...
    memory: bool
    signer: SignerInfo | None
    signature: str  # the signer described in one line

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["signer"] = dataclasses.asdict(self.signer) if self.signer else None
        return data


def inspect_bundle(bundle_path: Path, *, ctx: Workspace | None = None) -> BundleInfo:
    """What a bundle holds and who signed it, after full verification (nothing is written)."""
    ctx = workspace(ctx)
    return describe_bundle(open_bundle(bundle_path, ctx=ctx, log_refusal=False).verify(), ctx=ctx)


def describe_bundle(bundle: VerifiedBundle, *, ctx: Workspace | None = None) -> BundleInfo:
    """A verified bundle's contents, and whether the store has its base."""
    ctx = workspace(ctx)
    doc = bundle.manifest
    return BundleInfo(
        state=dict(bundle.state),
        base={k: doc["base"][k] for k in ("name", "version", "sha256", "size", "format", "urls")},
        base_in_store=ctx.images.find(doc["base"]["sha256"]) is not None,
        since=bundle.since,
        disks=list(doc["disks"]),
        memory=doc.get("memory") is not None,
        signer=bundle.signer,
        signature=describe_signer(bundle.signer),
    )


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
    ctx = workspace(ctx)
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
        if message_size(exported.size) > settings.size_limit:
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
