"""The mechanics of importing a state: where it goes, and recording it through the project's driver.

Semantics the bundle format leaves to the project layer:

* An imported state keeps the sender's state id, so a later incremental bundle finds the state it
  builds on. Its parent here is what its layers back onto: nothing (the base) for a full bundle,
  the ``since`` state for an incremental one.
* A full bundle becomes a new project, or a new branch of the named project if that project
  exists on the same base; an incremental bundle goes into the project that holds its ``since`` state.
* Every check runs before anything is created: a new project's layers are materialised (and so
  vetted) in ``cache/vmlstate-import-PID-*`` first (:func:`prepared_layers`), and a refusal is one
  logbook row saying so (``vmlog.app.refusals``), not a project made and removed again.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors import registry
from vmlog.bundles import BundleReader, BundleRejected, VerifiedBundle
from vmlog.bundles.reader import PreparedReader
from vmlog.errors import InvalidInput, NotFound
from vmlog.fsutil import atomic_write_text
from vmlog.projects.driver import IncomingState, Progress, StateDriver, no_progress
from vmlog.projects.incoming import base_reference, check_base, check_fits
from vmlog.projects.model import State
from vmlog.projects.names import check_project_name
from vmlog.projects.sender_log import write_sender_logbook
from vmlog.projects.state_export import file_part
from vmlog.projects.store import ProjectFiles, ProjectStore
from vmlog.store.images import StoredImage

IMPORT_WORK_PREFIX = "vmlstate-import-"
IMPORT_RECORD = "import.json"

_STATE_ID = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Target:
    """The project a bundle's state goes into, and whether the import creates it."""

    name: str
    create: bool


def check_state_id(bundle: VerifiedBundle) -> str:
    """The bundle's state id, which names a directory here: 8 to 64 lowercase hex digits."""
    sid = bundle.state.get("id")
    if not isinstance(sid, str) or not _STATE_ID.match(sid):
        raise BundleRejected("manifest", "the bundle's state id is not 8 to 64 lowercase hex digits")
    return sid


def choose_target(store: ProjectStore, bundle: VerifiedBundle, project: str | None, backend: str | None) -> Target:
    """Where the state goes (see the module docstring); ``backend`` must match an existing project's."""
    since = bundle.since
    if since is not None:
        target = Target(_find_since(store, since["state_id"], project), False)
    elif project and project in store.names():
        target = Target(project, False)
    elif project:
        target = Target(check_project_name(project), True)
    else:
        wanted = str(bundle.state.get("project") or bundle.state.get("name") or "imported")
        target = Target(_unique_project_name(store, wanted), True)
    if backend and not target.create:
        existing = store.get(target.name).load().backend
        if registry.canonical_name(backend) != existing:
            raise InvalidInput(
                f"project {target.name!r} runs on {existing}, not {backend}",
                fix=f"import without --backend, or into a new project (--project NEWNAME --backend {backend})",
            )
    return target


def _unique_project_name(store: ProjectStore, wanted: str) -> str:
    base = file_part(wanted) or "imported"
    if not base[0].isalnum():
        base = "imported-" + base
    base = base[:50]
    names = set(store.names())
    candidate, n = base, 2
    while candidate in names:
        candidate, n = f"{base}-{n}", n + 1
    return check_project_name(candidate)


def _find_since(store: ProjectStore, state_id: str, project: str | None) -> str:
    names = store.names()
    for name in [project] if project else names:
        if name in names and state_id in store.get(name).states():
            return name
    where = f"project {project!r}" if project else "any project"
    raise NotFound(
        f"the bundle is incremental on state {state_id[:12]}, which {where} here does not have",
        fix="import the full bundle of that state first, or ask the sender for a full bundle"
        " (without --since)",
    )


def spec_numbers(spec: dict[str, Any]) -> tuple[int, int]:
    """CPUs and memory from the sender's spec, within sane bounds (the rest of it is not trusted)."""
    cpus, memory = spec.get("cpus"), spec.get("memory_mib")
    cpus = cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and 1 <= cpus <= 64 else 1
    memory = memory if isinstance(memory, int) and not isinstance(memory, bool) and 32 <= memory <= 1 << 20 else 512
    return cpus, memory


def add_bundle_state(
    files: ProjectFiles, driver: StateDriver, incoming: IncomingState, *, work: Path, progress: Progress = no_progress
) -> State:
    """Check that the bundle fits the project, record its state through the driver, keep the sender's logbook."""
    project = files.load()
    labels = driver.exchanged_labels(project)
    check_fits(project, files.states(), incoming.bundle, labels)
    check_base(project, labels, incoming.image)
    state = driver.add_state(files, incoming, work=work, progress=progress)
    write_sender_logbook(files, state.id, incoming.bundle.logbook)
    return state


@contextmanager
def prepared_layers(reader: BundleReader, image: StoredImage, cache: Path, project: str) -> Iterator[BundleReader]:
    """The bundle's layers materialised and vetted in a work directory, before ``project`` is made for them.

    The directory carries this process's id and names the project it is for (``import.json``), so
    ``vml doctor --repair`` removes a project a crash left half-imported, and the directory.
    """
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f"{IMPORT_WORK_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    record = {"project": project, "state_id": reader.verify().state.get("id")}
    atomic_write_text(work / IMPORT_RECORD, json.dumps(record) + "\n")
    try:
        yield PreparedReader(reader, reader.materialise(work / "layers", base=base_reference(image)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
