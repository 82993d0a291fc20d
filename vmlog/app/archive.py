"""Freezing a project: archive it into one verifiable ``.vmlarchive``, check one, and unarchive one into a project.

An archive is for a reader years away, maybe without vmlog (docs/archive-format.md). Archiving reads
the project under its lock and writes to a temporary name beside the output, renamed only when
complete. Unarchiving treats the file as coming from elsewhere: a first full walk checks every
digest, name, size and header while writing nothing; only then is the project built in a hidden
staging directory (bases through the image store's gate), and published in one rename.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypervisors import registry
from hypervisors.base import SnapshotModel
from hypervisors.errors import ReportableError, Unsupported
from vmlog.app.backend_names import typed_backend
from vmlog.app.import_project import ImportedProject, reseed_unarchived
from vmlog.app.projects import resolve_project
from vmlog.app.session import session
from vmlog.archive import format as af
from vmlog.archive.pack import write_archive
from vmlog.archive.plan import make_plan
from vmlog.archive.reader import VerifiedArchive, read_archive
from vmlog.archive.releases import configure_sources, install_objects
from vmlog.archive.unpack import archived_records, attach_layers, localise, unpack
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.projects import current as current_project
from vmlog.projects import releases as project_releases
from vmlog.projects.backends import is_native_project
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import Project, State
from vmlog.projects.names import check_project_name, project_holder, vm_name_for
from vmlog.projects.store import ProjectFiles
from vmlog.releases.mounts import default_cache_dir
from vmlog.store.model import QEMU_FORMATS
from vmlog.workspace import Workspace, workspace

SUFFIX = af.SUFFIX
ARCHIVED_LOGBOOK = "archived-logbook.json"
_SPACE_MARGIN = 64 << 20
_PROGRESS_EVERY = 0.5


@dataclass(frozen=True)
class ArchiveResult:
    """A project written as an archive: where, its size and whole-file sha256, what it holds."""

    path: Path
    project: str
    size: int
    sha256: str
    states: int
    layers: int
    bases: int
    raw_bytes: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class ArchiveCheck:
    """An archive checked end to end without unpacking it."""

    path: Path
    project: str
    size: int
    sha256: str
    states: list[dict[str, Any]]
    layers: int
    bases: list[dict[str, Any]]
    raw_bytes: int
    created: str
    generator: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class UnarchiveResult:
    """The project an archive became here."""

    project: str
    archived_name: str
    backend: str
    states: int
    layers: int
    bases_added: list[str]
    current: str | None
    notes: list[str] = field(default_factory=list)
    ssh_port: int | None = None  # the importer's SSH forward (None: the backend has none)
    user: str | None = None  # whom the seed makes, and `vml ssh` logs in as
    releases_not_mounted: list[str] = field(default_factory=list)  # the current state's releases not mounted here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _byte_progress(progress: Progress, what: str, start: float, end: float) -> Any:
    """(done, total) byte counts as progress lines with the rate, throttled, mapped into ``start..end``."""
    began = last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < _PROGRESS_EVERY and done < total:
            return
        last = now
        rate = done / max(now - began, 1e-6)
        left = (total - done) / rate if rate > 0 else 0.0
        progress(f"{what}: {done / 1e6:.0f} of {total / 1e6:.0f} MB, {rate / 1e6:.0f} MB/s, {left:.0f} s left",
                 start + (end - start) * (done / total if total else 1.0))

    return report


def _check_space(where: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(where).free
    if free < needed + _SPACE_MARGIN:
        raise VmlogError(
            f"{what} needs about {(needed + _SPACE_MARGIN) / 1e6:.0f} MB on {where}, which has {free / 1e6:.0f} MB"
            " free; nothing was written",
            fix=f"free space on the disk holding {where}, or write elsewhere (-o), then run the command again",
        )


def _logbook_rows(ctx: Workspace, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [e.to_dict() for e in ctx.logbook.entries(project=name)]
    return rows + [n.to_dict() for n in ctx.logbook.notes(project=name)]


def archive_project(name: str | None, out: Path | None = None, *, ctx: Workspace | None = None,
                    progress: Progress = no_progress, threads: int | None = None) -> ArchiveResult:
    """Write project ``name`` (every state, its bases, files, logbook and an OVF per state) as one archive."""
    ctx = workspace(ctx)
    name = resolve_project(name, ctx)
    out = Path(out) if out is not None else Path.cwd() / f"{name}{SUFFIX}"
    if out.is_dir():
        out = out / f"{name}{SUFFIX}"
    if not out.parent.is_dir():
        raise NotFound(f"there is no directory {out.parent} to write the archive in", fix="give -o a file in an"
                       " existing directory")
    if out.exists():
        raise AlreadyExists(f"{out} exists", fix="give another file with -o, or remove that one first")
    with session(ctx, name, "project archive", file=str(out)) as op:
        files = ctx.projects.get(name)
        project = files.load()
        if is_native_project(project):
            raise Unsupported(f"project {name!r} keeps its states as {project.backend} snapshots; only kvm projects"
                              " archive yet", fix=f"export each state with `vml state export REF --project {name}`")
        if project.remote:  # the archive writer reads layer files here; a remote project's are volumes of its host
            raise Unsupported(f"project {name!r} keeps its layers on {project.uri}; only projects whose layers are"
                              " files on this machine archive yet",
                              fix=f"export each state with `vml state export REF --project {name}` (`vml state list"
                              f" --project {name}` names them)")
        states = files.states()
        if not states:
            raise InvalidInput(f"project {name!r} has no saved state to archive",
                               fix=f"save one first: `vml state save NAME --project {name}`")
        progress("finding every layer of every state", 0.01)
        plan = make_plan(files, project, states, _logbook_rows(ctx, name), lambda sha: ctx.images.get(sha),
                         release_cache=default_cache_dir(ctx.home))
        if any(files.layers.has_changes(layer) for layer in project.live.values()):
            plan.notes.append("the VM's unsaved changes (its live disk) are not archived; save a state to keep them")
        _check_space(out.parent, plan.source_bytes(), "the archive")
        packed = write_archive(plan, out, progress=_byte_progress(progress, "archiving", 0.02, 0.98),
                               threads=threads)
        op.message = f"{packed.states} states, {packed.layers} layers, {packed.size / 1e6:.0f} MB, {packed.sha256}"
    progress("archived", 1.0)
    return ArchiveResult(out, name, packed.size, packed.sha256, packed.states, packed.layers, packed.bases,
                         packed.raw_bytes, packed.notes)


def verify_archive(path: Path, *, progress: Progress = no_progress) -> ArchiveCheck:
    """Check every member, digest and header of an archive without unpacking anything (``ArchiveRejected``)."""
    verified = read_archive(Path(path), progress=_byte_progress(progress, "verifying", 0.0, 1.0))
    return _check_of(verified)


def _check_of(verified: VerifiedArchive) -> ArchiveCheck:
    doc = verified.manifest
    states = [{"id": s["id"], "name": s.get("name"), "parent": s.get("parent")} for s in doc["states"]]
    bases = [{k: b.get(k) for k in ("name", "version", "sha256", "format", "size")} for b in doc["bases"]]
    return ArchiveCheck(verified.path, doc["project"]["name"], verified.size, verified.sha256, states,
                        len(doc["layers"]), bases, verified.raw_bytes(), str(doc.get("created", "")),
                        str(doc.get("generator", "")))


def _target_backend(backend: str | None, archived: Project) -> tuple[str, bool]:
    """The backend of the new project, and whether its states are native snapshots (reached through bundles)."""
    name = typed_backend(backend) if backend else registry.canonical_name(archived.backend or "kvm")
    return name, registry.backend_class(name).snapshot_model is SnapshotModel.NATIVE_TREE


def unarchive_project(path: Path, *, name: str | None = None, backend: str | None = None,
                      backend_options: dict[str, Any] | None = None, ctx: Workspace | None = None,
                      progress: Progress = no_progress, usable: bool = True) -> UnarchiveResult:
    """Check an archive end to end, then rebuild its project here (``name``, default the archived name).

    The project is made usable here as an imported one is (``usable``; only the hidden kvm copy on the
    way to a native backend goes without): the importer's SSH forward and seed
    (:func:`vmlog.app.import_project.reseed_unarchived`), and the current state's releases mounted,
    those that could not be named in ``releases_not_mounted``.

    On a backend whose states are native snapshots (VirtualBox, VMware) the project is rebuilt on kvm
    under a hidden name first, then each state travels as a state bundle, parents first, through the
    same import that `vml state import --backend` runs (:func:`_onto_native`).
    """
    ctx = workspace(ctx)
    progress("verifying the archive (nothing is written yet)", 0.0)
    verified = read_archive(Path(path), progress=_byte_progress(progress, "verifying", 0.0, 0.45))
    archived, states = archived_records(verified)
    target = check_project_name(name or archived.name)
    if target in ctx.projects.names():
        raise AlreadyExists(f"a project called {target!r} exists here",
                            fix=f"unarchive under another name: `vml project unarchive {Path(path).name} --name NEW`")
    chosen, native = _target_backend(backend, archived)
    if native:
        return _onto_native(Path(path), target, chosen, backend_options or {}, ctx, progress)
    missing = [b for b in verified.manifest["bases"] if ctx.images.find(b["sha256"]) is None]
    _check_space(ctx.home.data, verified.raw_bytes(("layer", "release")) + sum(b["size"] for b in missing),
                 "unarchiving")
    for base in missing:
        if QEMU_FORMATS.get(str(base.get("store_format"))) != base["format"]:
            raise InvalidInput(f"base {base['sha256'][:12]} has an unknown store format")
    with session(ctx, target, "project unarchive", file=Path(path).name) as op:
        result = _build(ctx, verified, archived, states, target, chosen, op, progress, usable=usable)
        if usable:
            result = _mount_current_releases(ctx, result)
            op.message += "".join(f"; release {line} was not re-mounted" for line in result.releases_not_mounted)
    current_project.set_(ctx.home.data, target)
    progress("unarchived", 1.0)
    return result


def _onto_native(path: Path, target: str, backend: str, options: dict[str, Any], ctx: Workspace,
                 progress: Progress) -> UnarchiveResult:
    """The archive as a kvm project under a hidden name, then its states as bundles onto ``backend``, parents first."""
    from vmlog.app import exchange, projects, states

    staging = f"{target[:40]}-unarchiving-{secrets.token_hex(3)}"
    on_kvm = unarchive_project(path, name=staging, backend="kvm", ctx=ctx, usable=False,
                               progress=lambda m, f: progress(m, None if f is None else f * 0.5))
    work = ctx.home.cache / f"vmlarchive-bundles-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(parents=True, mode=0o700)
    created = False
    ssh_port: int | None = None
    user: str | None = None
    warnings: list[str] = []
    try:
        records = ctx.projects.get(staging).states()
        order = sorted(records.values(), key=lambda s: (len(_ancestry(records, s.id)), s.created, s.id))
        for index, state in enumerate(order):
            progress(f"moving state {state.label()} onto {backend}", 0.5 + 0.45 * index / len(order))
            bundle = exchange.export_state(staging, state.id, work, since=state.parent, ctx=ctx)
            imported = exchange.import_state(bundle.path, project=target, trust=True,
                                             backend=None if created else backend, backend_options=options, ctx=ctx)
            if not created:  # the import that made the project gave it the importer's forward and seed
                ssh_port, user, warnings = imported.ssh_port, imported.user, list(imported.warnings)
            created = True
            bundle.path.unlink()
        missing: list[str] = []
        if on_kvm.current is not None:
            restored = states.restore_state(target, on_kvm.current, discard=True, ctx=ctx).releases
            missing = list(restored.warnings) if restored is not None else []
        current_project.set_(ctx.home.data, target)
    except BaseException:
        if created:
            projects.remove_project(target, ctx=ctx)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        projects.remove_project(staging, ctx=ctx)
    return UnarchiveResult(target, on_kvm.archived_name, backend, on_kvm.states, on_kvm.layers, on_kvm.bases_added,
                           on_kvm.current, [*on_kvm.notes, f"states moved onto {backend} as state bundles",
                                            *warnings, *(f"release not re-mounted: {m}" for m in missing)],
                           ssh_port=ssh_port, user=user, releases_not_mounted=missing)


def _ancestry(records: dict[str, State], state_id: str) -> list[str]:
    chain, seen = [], set()
    current: str | None = state_id
    while current is not None and current in records and current not in seen:
        seen.add(current)
        chain.append(current)
        current = records[current].parent
    return chain


def _build(ctx: Workspace, verified: VerifiedArchive, archived: Project, states: dict[str, State], target: str,
           backend: str, op: Any, progress: Progress, *, usable: bool) -> UnarchiveResult:
    staged = ctx.projects.staging(target)
    op.on_rollback(lambda: shutil.rmtree(staged.root, ignore_errors=True))
    work = ctx.home.cache / f"vmlarchive-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(parents=True, mode=0o700)
    try:
        unpacked = unpack(verified, staged, work, have_base=lambda sha: ctx.images.find(sha) is not None,
                          progress=_byte_progress(progress, "unpacking", 0.45, 0.9))
        bases = {b["sha256"]: b for b in verified.manifest["bases"]}
        for sha, file in unpacked.bases.items():
            progress(f"adding base {bases[sha]['name']} to the image store (checked at its gate)", 0.92)
            base = bases[sha]
            ctx.images.add_file(file, name=base["name"], version=base["version"], format=base["store_format"],
                                urls=tuple(u for u in base.get("urls") or () if isinstance(u, str)),
                                expected_sha256=sha, move=True)
            op.on_rollback(lambda sha=sha: _forget_base(ctx, sha))
        if unpacked.releases:
            progress(f"putting {len(unpacked.releases)} release objects into the release cache", 0.93)
            install_objects(unpacked.releases, default_cache_dir(ctx.home))
        unpacked.notes.extend(configure_sources(verified.manifest.get("releases"), ctx.home))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress("checking every layer's chain", 0.95)
    attach_layers(staged, verified, lambda sha: ctx.images.get(sha).path)
    vm_name = vm_name_for(ctx.home, target)
    local, notes = localise(archived, verified, name=target, vm_name=vm_name, backend=backend,
                            root=ctx.projects.files(target).root, run_dir=ctx.home.vm_runtime_dir(vm_name))
    local.live = _live_layers(staged, local, states)
    access = _reseed(ctx, local, staged, notes) if usable else None
    staged.write(local)
    staged.states()  # the state index, built from the records
    logbook = verified.small.get(af.LOGBOOK)
    if logbook is not None:
        (staged.root / ARCHIVED_LOGBOOK).write_bytes(logbook)
    for sha in {root.image_sha256 for root in local.roots.values() if root.image_sha256}:
        ctx.images.add_ref(sha, project_holder(local))
        op.on_rollback(lambda sha=sha: ctx.images.remove_ref(sha, project_holder(local)))
    ctx.projects.publish(staged, target)
    op.message = f"from {verified.path.name} (sha256 {verified.sha256}): {len(states)} states"
    return UnarchiveResult(target, archived.name, backend, len(states), len(verified.manifest["layers"]),
                           sorted(unpacked.bases), local.current, [*_archived_notes(verified), *unpacked.notes, *notes],
                           ssh_port=access.ssh_port if access else None, user=access.user if access else None)


def _reseed(ctx: Workspace, local: Project, staged: ProjectFiles, notes: list[str]) -> ImportedProject | None:
    """The importer's SSH forward and seed for the project being built (None, with a note, if its base is unknown)."""
    sha = local.base.get("sha256") or next((r.image_sha256 for r in local.roots.values() if r.image_sha256), None)
    image = ctx.images.find(str(sha)) if sha else None
    if image is None:
        notes.append("the project starts from no base image of the store: it has no seed or SSH forward here")
        return None
    access = reseed_unarchived(local, staged.root, ctx.projects.files(local.name).root, image, ctx=ctx)
    notes.append(f"`vml ssh {local.name}` logs in as {access.user} (SSH forwarded from port {access.ssh_port})")
    notes.extend(access.warnings)
    return access


def _mount_current_releases(ctx: Workspace, result: UnarchiveResult) -> UnarchiveResult:
    """Mount the current state's releases for the new project, as an import's restore does; name those that fail.

    The project is published already: nothing here may fail the unarchive (and roll back its base).
    """
    if result.current is None:
        return result
    files = ctx.projects.get(result.project)
    try:
        outcome = project_releases.apply_state(files, files.states()[result.current], where=ctx.home)
        missing = list(outcome.warnings)
    except (ReportableError, OSError) as exc:  # the project is whole; only its releases are not mounted
        missing = [f"the current state's releases: {getattr(exc, 'message', None) or exc}"]
    if not missing:
        return result
    notes = [*result.notes, *(f"release not re-mounted: {line}" for line in missing)]
    return dataclasses.replace(result, notes=notes, releases_not_mounted=missing)


def _archived_notes(verified: VerifiedArchive) -> list[str]:
    """What the archiving side said it left out (texts from the archive: bounded, printable)."""
    notes = verified.manifest.get("notes")
    if not isinstance(notes, list):
        return []
    return ["".join(c if c.isprintable() else "?" for c in n[:300]) for n in notes[:50] if isinstance(n, str)]


def _forget_base(ctx: Workspace, sha: str) -> None:
    """Undo a base this unarchive added to the store, unless something came to hold it meanwhile."""
    try:
        ctx.images.remove(sha)
    except VmlogError:
        pass


def _live_layers(staged: ProjectFiles, project: Project, states: dict[str, State]) -> dict[str, str]:
    """A fresh empty live layer per disk on the current state (or the disk's root)."""
    live = {}
    for label in project.roots:
        backing, fmt = staged.layer_under(project, states, project.current, label)
        live[label] = staged.layers.new_name(label)
        staged.layers.create_overlay(live[label], backing, fmt)
    return live
