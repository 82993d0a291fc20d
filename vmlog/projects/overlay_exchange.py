"""The overlay-chain side of state bundles: an imported state becomes new qcow2 layers in the project's chain."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from hypervisors import qemu_img
from vmlog import fsutil
from vmlog.projects.driver import IncomingState, Progress, chain_tops, no_progress
from vmlog.projects.incoming import base_reference, check_since, record_fields
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles

MEMORY_FILE = "memory.img"


def _since_of(files: ProjectFiles, project: Project, states: dict[str, State], incoming: IncomingState,
              progress: Progress) -> tuple[State | None, str | None]:
    """The ``since`` state here and its digest, checked against the sender's (None, None for a full bundle)."""
    since = incoming.bundle.since
    if since is None:
        return None, None
    state = states[since["state_id"]]
    progress("checking that the since state matches the sender's", 0.3)
    return state, check_since(files, project, state, chain_tops(files)(state), since["digest"])


def _place_layers(files: ProjectFiles, project: Project, states: dict[str, State], incoming: IncomingState,
                  parent: State | None, since_digest: str | None, names: dict[str, str]) -> bool:
    """Materialise the bundle's layers under ``names`` on ``parent``'s layers; True if its memory image came too."""
    sid = incoming.bundle.state["id"]
    staging = files.root / f".import-{secrets.token_hex(4)}"
    try:
        materialised = incoming.reader.materialise(
            staging,
            base=base_reference(incoming.image),
            since_layers=chain_tops(files)(parent) if parent else None,
            since_id=parent.id if parent else None,
            since_digest=since_digest,
            layer_name=lambda label: names[label],
        )
        files.layers.dir.mkdir(parents=True, exist_ok=True)
        for label, path in materialised.disks.items():
            dest = files.layers.path(names[label])
            fsutil.durable_rename(path, dest)
            backing, backing_format = files.layer_under(project, states, parent.id if parent else None, label)
            qemu_img.rebase_unsafe(dest, backing, backing_format)
            fsutil.fsync_file(dest)
        if incoming.memory and materialised.memory is not None:
            files.state_dir(sid).mkdir(parents=True, exist_ok=True)
            fsutil.durable_rename(materialised.memory, files.state_dir(sid) / MEMORY_FILE)
            return True
        return False
    except BaseException:
        for layer in names.values():
            files.layers.remove(layer)
        shutil.rmtree(files.state_dir(sid), ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def add_overlay_state(files: ProjectFiles, incoming: IncomingState, *, work: Path,
                      progress: Progress = no_progress) -> State:
    """New layers holding the bundle's state on its ``since`` state's layers (or the base), then its record.

    The layers and the memory image are durable before ``state.json`` names them; the live layer
    is untouched (the state is restored separately).
    """
    project = files.load()
    states = files.states()
    parent, since_digest = _since_of(files, project, states, incoming, progress)
    names = {label: files.layers.new_name(label) for label in incoming.bundle.labels}
    progress("writing the layers", 0.5)
    memory = _place_layers(files, project, states, incoming, parent, since_digest, names)
    state = State(
        id=incoming.bundle.state["id"],
        parent=parent.id if parent else None,
        layers=names,
        spec=dict(project.spec),
        memory=MEMORY_FILE if memory else None,
        backend=project.backend if memory else None,
        **record_fields(incoming.bundle, states, incoming.describe),
    )
    files.write_state(state)
    return state
