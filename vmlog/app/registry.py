"""Sharing states through an OCI registry: ``vml state push``, ``vml state pull``, ``vml state list --remote``.

A push exports the state as a bundle (:func:`vmlog.app.exchange.export_state`), then sends its
members as an OCI artefact (:mod:`vmlog.registry.mapping`), the base appliance as its own artefact,
and only the blobs the repository lacks. A pull rebuilds the bundle from the registry's blobs, each
hashed as it arrives, and hands it to the same verification and import as ``vml state import``:
the signer is accepted before the base is fetched, and nothing is written to the home's projects or
store before every check passed. An incremental state's parent is pulled first when it is missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog import safejson
from vmlog.app import exchange, projects
from vmlog.app.refusals import refusal_logged
from vmlog.app.session import session
from vmlog.bundles import BundleRejected, VerifiedBundle
from vmlog.bundles.errors import Untrusted
from vmlog.errors import InvalidInput
from vmlog.fsutil import atomic_write_text
from vmlog.projects import refs
from vmlog.projects.driver import Progress, no_progress, private_work_dir
from vmlog.projects.model import State
from vmlog.projects.state_export import file_part
from vmlog.registry import mapping, transfer
from vmlog.registry.auth import (
    Credentials,
    keyring_password,
    password_from_stdin,
    store_in_keyring,
    stored_credentials,
)
from vmlog.registry.client import RegistryClient
from vmlog.registry.errors import RegistryAuthError, RegistryError
from vmlog.registry.reference import Reference, check_tag, parse_reference
from vmlog.workspace import Workspace, workspace

MAX_PARENT_DEPTH = 64

__all__ = [
    "Login", "PullResult", "PushResult", "RemoteEntry", "RemoteListing", "list_remote", "pull_state", "push_state",
]


@dataclass(frozen=True)
class Login:
    """How to reach a registry: credentials given on the command line (else the auth files), a CA, plain HTTP."""

    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    plain_http: bool = False

    @staticmethod
    def from_stdin(username: str | None, stdin_text: str | None, **kwargs: Any) -> Login:
        """``--username NAME --password-stdin``: the password is the text on stdin (one newline dropped)."""
        if stdin_text is not None and not username:
            raise InvalidInput("--password-stdin needs --username", fix="pass --username NAME --password-stdin")
        return Login(username, password_from_stdin(stdin_text) if stdin_text is not None else None, **kwargs)

    def credentials(self, host: str) -> Credentials | None:
        """``--username`` with its password (given, else from the keyring), else what the auth files hold."""
        if not self.username:
            return stored_credentials(host)
        if self.password is not None:
            return Credentials(self.username, self.password, "--username")
        kept = keyring_password(host, self.username)
        if kept is not None:
            return Credentials(self.username, kept, "the keyring")
        raise RegistryAuthError(
            f"no password for {self.username!r} at {host}: none on stdin, none in the keyring",
            fix="pass the password on stdin with --password-stdin (add --remember-password to keep it in the keyring)",
        )

    def client(self, host: str) -> RegistryClient:
        return RegistryClient(host, credentials=self.credentials(host), ca_file=self.ca_file,
                              plain_http=self.plain_http)

    def remember(self, target: str) -> None:
        """Keep the password given on stdin in the system keyring for the reference's host."""
        if not self.username or self.password is None:
            raise InvalidInput("--remember-password needs --username and --password-stdin",
                               fix="pass --username NAME --password-stdin --remember-password")
        store_in_keyring(parse_reference(target).host, self.username, self.password)


@dataclass(frozen=True)
class PushResult:
    reference: str  # host/repo:tag
    digest: str  # the state's manifest digest
    state_id: str
    state_name: str | None
    since_id: str | None
    parent_digest: str | None
    base_manifest: str
    uploaded: list[str]
    present: list[str]
    mounted: list[str]
    bytes_uploaded: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PullResult:
    reference: str  # host/repo@digest
    imported: exchange.ImportResult
    base_from_registry: bool
    bytes_downloaded: int
    parents: list[str] = field(default_factory=list)  # references of parents pulled first, oldest first

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["imported"]["signer"] = dataclasses.asdict(self.imported.signer) if self.imported.signer else None
        return data


@dataclass(frozen=True)
class RemoteEntry:
    tag: str
    digest: str
    kind: str  # "state", "base" or "other"
    state_id: str | None
    state_name: str | None
    parent: str | None  # the parent state's id (incremental states)
    signer: str | None
    created: str | None
    base_sha256: str | None


@dataclass(frozen=True)
class RemoteListing:
    repository: str
    entries: list[RemoteEntry]

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "entries": [dataclasses.asdict(e) for e in self.entries]}


# -- push ----------------------------------------------------------------------------------------
def _tag_for(ref: Reference, state: State) -> str:
    if ref.tag:
        return ref.tag
    name = file_part(state.name or "")[:100].strip(".-")
    return check_tag(name) if name and name[0].isalnum() else state.id[:12]


def _already_there(client: RegistryClient, repo: str, tag: str, state_id: str) -> transfer.Tagged | None:
    """The tag's manifest if it already holds this very state (ids are immutable, so its blobs are the same)."""
    got = client.get_manifest(repo, tag, accept=mapping.OCI_MANIFEST, max_bytes=mapping.MAX_OCI_MANIFEST)
    if got is None:
        return None
    try:
        oci = mapping.parse_oci_manifest(got[0], f"{repo}:{tag}")
    except BundleRejected:
        return None
    if not mapping.is_state(oci) or (oci.get("annotations") or {}).get(mapping.STATE_ID) != state_id:
        return None
    return transfer.Tagged(tag, "sha256:" + hashlib.sha256(got[0]).hexdigest(), len(got[0]), oci)


def push_state(
    target: str, project_name: str | None, ref: str, *, since: str | None = None, sign: bool = True,
    login: Login | None = None, mount_from: str | None = None, chunk_size: int | None = None,
    ctx: Workspace | None = None, progress: Progress = no_progress,
) -> PushResult:
    """Push state ``ref`` (incremental on ``since`` if given) to ``target`` = ``host/repo[:tag]``.

    The tag defaults to the state's name. A tag that already holds this state is left as it is and
    nothing is sent. ``mount_from`` names another repository of the same registry that may hold the
    base already (a cross-repository mount instead of an upload).
    """
    ctx = workspace(ctx)
    where = parse_reference(target)
    if where.digest:
        raise InvalidInput("a push names a tag, not a digest", fix="push to HOST/REPOSITORY:TAG")
    login = login or Login()
    name = projects.resolve_project(project_name, ctx)
    files = ctx.projects.get(name)
    state = refs.resolve(files.states(), files.load().current, ref)
    tag = _tag_for(where, state)
    with login.client(where.host) as client:
        there = _already_there(client, where.repository, tag, state.id)
        if there is not None:
            return _unchanged(ctx, name, where.with_tag(tag), state, there)
        with private_work_dir(ctx.home.cache, "registry-push-") as work:
            exported = exchange.export_state(name, state.id, work, since=since, sign=sign, ctx=ctx, progress=progress)
            parts = mapping.split_bundle(exported.path)
            with session(ctx, name, "state push", ref=str(where.with_tag(tag))) as op:
                op.state_id = exported.state_id
                digest, base_manifest, parent = _send(client, where.repository, parts, exported, since=since,
                                                      mount_from=mount_from, chunk_size=chunk_size, ctx=ctx,
                                                      progress=progress, tag=tag)
                sent = client.transfer
                op.message = (f"pushed {state.label()} to {where.repo_ref}:{tag} ({len(sent.uploaded)} blobs"
                              f" uploaded, {sent.bytes_up / 1e6:.1f} MB; {len(sent.present)} already there)")
    progress("pushed", 1.0)
    return PushResult(
        reference=f"{where.repo_ref}:{tag}", digest=digest, state_id=exported.state_id, state_name=state.name,
        since_id=exported.since_id, parent_digest=parent["digest"] if parent else None, base_manifest=base_manifest,
        uploaded=list(sent.uploaded), present=list(sent.present), mounted=list(sent.mounted),
        bytes_uploaded=sent.bytes_up,
    )


def _unchanged(ctx: Workspace, project: str, where: Reference, state: State, there: transfer.Tagged) -> PushResult:
    assert there.oci is not None
    notes = there.oci.get("annotations") or {}
    with session(ctx, project, "state push", ref=str(where)) as op:
        op.state_id = state.id
        op.message = f"{where} already holds {state.label()}; nothing sent"
    return PushResult(
        reference=str(where), digest=there.digest, state_id=state.id, state_name=state.name,
        since_id=notes.get(mapping.PARENT_ID), parent_digest=notes.get(mapping.PARENT_MANIFEST),
        base_manifest=notes.get(mapping.BASE_MANIFEST, ""), uploaded=[], mounted=[], bytes_uploaded=0,
        present=[there.oci["config"]["digest"], *(layer["digest"] for layer in there.oci["layers"])],
    )


class BasesPushed:
    """Where this home pushed each base (``<cache>/registry-bases.json``), so a push to another repository of the
    same registry mounts it from there instead of uploading it again. Only a hint: a failed mount uploads."""

    MAX_REPOS = 16

    def __init__(self, cache: Path) -> None:
        self.path = cache / "registry-bases.json"

    def _load(self) -> dict[str, Any]:
        try:
            doc = safejson.loads(self.path.read_bytes(), what=str(self.path), max_bytes=1 << 20)
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def other_repo(self, host: str, sha256: str, repo: str) -> str | None:
        repos = (self._load().get(host) or {}).get(sha256) or []
        return next((r for r in reversed(repos) if isinstance(r, str) and r != repo), None)

    def add(self, host: str, sha256: str, repo: str) -> None:
        doc = self._load()
        if not isinstance(doc.get(host), dict):
            doc[host] = {}
        by_base = doc[host]
        repos = [r for r in by_base.get(sha256) or [] if r != repo][-(self.MAX_REPOS - 1):] + [repo]
        by_base[sha256] = repos
        try:
            atomic_write_text(self.path, json.dumps(doc, indent=1) + "\n")
        except OSError:
            pass  # a hint not kept costs one upload next time


def _send(
    client: RegistryClient, repo: str, parts: mapping.BundleParts, exported: exchange.ExportResult, *,
    since: str | None, mount_from: str | None, chunk_size: int | None, ctx: Workspace, progress: Progress, tag: str,
) -> tuple[str, str, dict[str, Any] | None]:
    """The base, then the state's blobs, then its manifest: (manifest digest, base manifest digest, parent)."""
    say = lambda message: progress(message, None)  # noqa: E731
    image = ctx.images.find(parts.manifest["base"]["sha256"])
    assert image is not None  # the export just read it
    progress(f"sending the base appliance to {client.host}/{repo} if it lacks it", 0.55)
    base = mapping.base_blob(image.path, image.sha256, image.size, image.qemu_format, image.path.name)
    seen = BasesPushed(ctx.home.cache)
    base_manifest = transfer.push_base(client, repo, base, name=image.name, version=image.version,
                                       mount_from=mount_from or seen.other_repo(client.host, image.sha256, repo),
                                       chunk_size=chunk_size, say=say)
    seen.add(client.host, image.sha256, repo)
    parent = None
    if exported.since_id:
        parent = transfer.find_state(client, repo, exported.since_id)
        if parent is None:
            raise RegistryError(
                f"{client.host}/{repo} does not hold the state {exported.since_id[:12]} this one builds on",
                fix=f"push that state first: `vml state push {client.host}/{repo}:TAG {since}`",
            )
    progress("sending the state's layers", 0.7)
    transfer.push_blob(client, repo, mapping.config_blob(parts), data=parts.manifest_bytes)
    for blob in parts.members:
        transfer.push_blob(client, repo, blob, chunk_size=chunk_size, say=say)
    body = mapping.state_manifest(parts, base_manifest=base_manifest, parent=parent)
    return client.put_manifest(repo, tag, body, mapping.OCI_MANIFEST), base_manifest, parent


# -- pull ----------------------------------------------------------------------------------------
def _have_state(ctx: Workspace, state_id: str) -> bool:
    return any(state_id in ctx.projects.get(name).states() for name in ctx.projects.names())


def pull_state(
    source: str, *, project: str | None = None, trust: bool = False,
    confirm: Callable[[VerifiedBundle], bool] | None = None, login: Login | None = None, insecure: bool = False,
    backend: str | None = None, ctx: Workspace | None = None, progress: Progress = no_progress,
) -> PullResult:
    """Pull the state ``source`` (``host/repo:tag`` or ``@digest``) into this home, its missing parents first.

    The base comes from the store, else from the same repository, else from the manifest's URLs.
    """
    ctx = workspace(ctx)
    ref = parse_reference(source, need_target=True)
    login = login or Login()
    with login.client(ref.host) as client:
        chain = _missing_chain(ctx, client, ref)
        pulled: list[PullResult] = []
        for i, remote in enumerate(chain):
            pulled.append(_pull_one(ctx, client, remote, project=project, trust=trust, confirm=confirm,
                                    insecure=insecure, backend=backend, progress=progress))
            progress(f"pulled {i + 1} of {len(chain)}", None)
        last = pulled[-1]
        return dataclasses.replace(last, bytes_downloaded=client.transfer.bytes_down,
                                   parents=[p.reference for p in pulled[:-1]])


def _missing_chain(ctx: Workspace, client: RegistryClient, ref: Reference) -> list[transfer.RemoteState]:
    """``ref``'s state and, before it, each parent this home lacks (oldest first)."""
    with refusal_logged(ctx.logbook, None, "state pull", ref=str(ref)):
        chain = [transfer.fetch_state(client, ref)]
        while chain[-1].manifest.get("since") and not _have_state(ctx, chain[-1].manifest["since"]["state_id"]):
            parent = chain[-1].parent
            if parent is None or len(chain) > MAX_PARENT_DEPTH:
                break  # the import says which state is missing and what to do
            chain.append(transfer.fetch_state(client, ref.with_digest(parent)))
    return chain[::-1]


def _pull_one(
    ctx: Workspace, client: RegistryClient, remote: transfer.RemoteState, *, project: str | None, trust: bool,
    confirm: Callable[[VerifiedBundle], bool] | None, insecure: bool, backend: str | None, progress: Progress,
) -> PullResult:
    ref = remote.reference
    say = lambda message: progress(message, None)  # noqa: E731
    with private_work_dir(ctx.home.cache, "registry-pull-") as work:
        bundle = work / f"{remote.manifest['state']['id'][:16]}.vmlstate"
        with refusal_logged(ctx.logbook, project, "state pull", ref=str(ref)):
            progress(f"downloading {ref}", 0.02)
            transfer.write_bundle(client, remote, bundle, say=say)
        reader = exchange.open_bundle(bundle, ctx=ctx)
        verified = reader.verify_header()
        try:
            exchange.check_trust(verified, trust=trust, confirm=confirm, ctx=ctx)
        except Untrusted as exc:  # the import's fix names the temporary bundle; name the pull instead
            raise Untrusted(exc.message, fix=f"check who signed it, then pull with `vml state pull {ref} --trust`"
                            " (or make the signer known first)") from None
        base_file, from_registry = None, False
        base = verified.base
        if ctx.images.find(base["sha256"]) is None:
            candidate = work / "base"
            with refusal_logged(ctx.logbook, project, "state pull", ref=str(ref)):
                from_registry = transfer.fetch_base(client, ref.repository, base["sha256"], base["size"], candidate,
                                                    say=say)
            base_file = candidate if from_registry else None
        imported = exchange.import_state(reader, project=project, trust=True, insecure=insecure, backend=backend,
                                         base_file=base_file, ctx=ctx, progress=progress)
    return PullResult(reference=str(ref), imported=imported, base_from_registry=from_registry,
                      bytes_downloaded=client.transfer.bytes_down)


# -- list ----------------------------------------------------------------------------------------
def list_remote(repository: str, *, login: Login | None = None) -> RemoteListing:
    """What ``host/repo`` holds: each tag, whether it is a state or a base, and the state's name and signer."""
    ref = parse_reference(repository)
    login = login or Login()
    entries = []
    with login.client(ref.host) as client:
        for entry in transfer.tagged_manifests(client, ref.repository):
            notes = (entry.oci or {}).get("annotations") or {}
            kind = "other"
            if entry.oci is not None and mapping.is_state(entry.oci):
                kind = "state"
            elif entry.oci is not None and entry.oci.get("artifactType") == mapping.BASE_ARTIFACT_TYPE:
                kind = "base"
            entries.append(RemoteEntry(
                tag=entry.tag, digest=entry.digest, kind=kind, state_id=notes.get(mapping.STATE_ID),
                state_name=notes.get(mapping.STATE_NAME), parent=notes.get(mapping.PARENT_ID),
                signer=notes.get(mapping.SIGNER), created=notes.get(mapping.CREATED),
                base_sha256=notes.get(mapping.BASE_SHA256),
            ))
    return RemoteListing(ref.repo_ref, entries)
