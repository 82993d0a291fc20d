"""The mechanics of exporting a state: the ``since`` state, what travels of the spec and logbook, the bundle file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog.bundles import BaseImageRef, BundleWriter, SigningKey, SinceRef
from vmlog.errors import InvalidInput
from vmlog.logbook import Logbook
from vmlog.projects import refs
from vmlog.projects.digest import layers_digest
from vmlog.projects.driver import LayersOf, Progress
from vmlog.projects.memory_stack import memory_stack
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles
from vmlog.store import provenance
from vmlog.store.images import StoredImage

SUFFIX = ".vmlstate"


@dataclass(frozen=True)
class Outgoing:
    """A state on its way out: the project it is in, the state, and what the bundle builds on."""

    files: ProjectFiles
    project: Project
    state: State
    image: StoredImage
    since: State | None = None


def file_part(text: str) -> str:
    """``text`` as part of a file name (letters, digits, ``._-``; at most 60 characters)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip(".-")[:60] or "state"


def portable_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The VM spec without this machine's paths (disks by label, no console files, no host folders)."""
    data = dict(spec)
    data["disks"] = [{**d, "path": d.get("label") or "disk"} for d in spec.get("disks", [])]
    data["serial_log"] = None
    data["channel_socket"] = None
    data["shared_folders"] = []
    return data


def logbook_excerpt(logbook: Logbook, project: str, state_ids: list[str]) -> list[dict[str, Any]]:
    """The logbook rows and notes of the states a bundle carries, for the recipient to read."""
    rows: list[dict[str, Any]] = []
    for sid in state_ids:
        rows.extend(e.to_dict() for e in logbook.entries(project=project, state=sid))
        rows.extend(n.to_dict() for n in logbook.notes(project=project, state=sid))
    return rows


def since_state(states: dict[str, State], current: str | None, state: State, since: str | None) -> State | None:
    """The state ``since`` names, which must be an ancestor of ``state`` (None for a full bundle)."""
    if since is None:
        return None
    found = refs.resolve(states, current, since)
    if found.id not in refs.ancestors(states, state.id)[1:]:
        raise InvalidInput(
            f"state {found.label()} is not an ancestor of {state.label()}",
            fix="give --since a state the exported state was saved after (see `vml state tree`)",
        )
    return found


def carried_states(states: dict[str, State], state: State, since: State | None) -> list[str]:
    """Ids of the states whose history the bundle carries: ``state`` back to (not including) ``since``."""
    path_ids = refs.ancestors(states, state.id)
    return path_ids[: path_ids.index(since.id)] if since is not None else path_ids


def memory_of(out: Outgoing, with_memory: bool) -> Path | None:
    """The state's memory image if it is to travel (``InvalidInput`` if asked for and there is none)."""
    if not with_memory:
        return None
    memory = out.files.memory_path(out.state)
    if memory is None or not memory.is_file():
        raise InvalidInput(f"state {out.state.label()} has no memory image", fix="export without --with-memory")
    return memory


def bundle_path(out: Path | None, project: Project, state: State, since: State | None) -> Path:
    """Where the bundle goes: ``out`` as given, or a name made of project and state in directory ``out`` (or here)."""
    target = Path(out) if out is not None else Path.cwd()
    if not target.is_dir():
        return target
    stem = f"{file_part(project.name)}-{file_part(state.name or state.id[:12])}"
    if since is not None:
        stem += f"-since-{since.id[:8]}"
    return target / f"{stem}{SUFFIX}"


def state_record(project: Project, state: State) -> dict[str, Any]:
    """The state as the manifest carries it."""
    return {
        "id": state.id,
        "name": state.name,
        "message": state.message,
        "author": state.author,
        "created": state.created,
        "parent": state.parent,
        "project": project.name,
        "release_mounts": state.release_mounts,
    }


def base_provenance(image: StoredImage) -> dict[str, Any] | None:
    """The store's record of how ``image`` was obtained, as the manifest carries it (None if there is none)."""
    record = provenance.load(image.path.parent.parent, image.sha256)  # <store>/<sha256>/<file>
    return record.to_manifest() if record is not None else None


BLOCK_INDEX_DIR = "block-index"  # under the home's cache: each base's block index, by sha256


def new_writer(
    out: Outgoing, layers_of: LayersOf, *, urls: Sequence[str], logbook: list[dict[str, Any]],
    memory: Path | None, key: SigningKey | None, workdir: Path, progress: Progress, checks: bytes | None = None,
) -> BundleWriter:
    """A bundle writer holding the state's disks (against the base, or the ``since`` state) and its records
    (``checks``: the project's checks.json, so the receiver can rerun what the state must produce)."""
    image = out.image
    since_ref = None
    if out.since is not None:
        progress("computing the digest of the since state", 0.05)
        since_layers = layers_of(out.since)
        since_ref = SinceRef(out.since.id, layers_digest(out.files, out.project, since_layers), since_layers)
    writer = BundleWriter(
        BaseImageRef(
            path=image.path, format=image.qemu_format, sha256=image.sha256, name=image.name,
            version=image.version, size=image.size, urls=tuple(urls), provenance=base_provenance(image),
        ),
        state=state_record(out.project, out.state),
        vm_spec=portable_spec(out.state.spec),
        logbook=logbook,
        since=since_ref,
        memory=memory,
        memory_info=memory_stack(out.project, out.state, memory) if memory else None,
        signing_key=key,
        workdir=workdir,
        block_index_dir=workdir / BLOCK_INDEX_DIR,
        checks=checks,
    )
    progress("reading the state's disks", 0.1)
    for label, layer_path in layers_of(out.state).items():
        writer.add_disk(label, layer_path)
    return writer
