"""Exporting and importing the states of a remote project: through a local copy that the bundle code reads as ever.

The bundle writer and reader work on local qcow2 files. For a project on a remote host, an export downloads the
layers of the states it carries (sparse: holes travel as lengths) into a work directory beside a copy of the
project's records, re-points each at the one under it by a relative name (libvirt records the host's absolute
paths) and at the local base image at the bottom, and hands that copy to the writer. An import writes the new
state's layers into such a copy as for a local project, re-points them at names the host's pool resolves (the
layer under it, or the base's volume), and uploads them, each read back before the record names it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

from hypervisors import qemu_img
from vmlog.projects.driver import IncomingState, Progress, no_progress
from vmlog.projects.model import Project, State
from vmlog.projects.remote_layers import RemoteLayerStore, base_of_volume, base_volume_name
from vmlog.projects.store import STATE_FILE, ProjectFiles

VIEW_DIR = "project"
MEMORY_FILE = "memory.img"  # overlay_exchange's name for an imported memory image
MAX_CHAIN = 1000  # a chain longer than any vmlog makes: a loop in the host's records


def _fetch_chain(remote: RemoteLayerStore, view: ProjectFiles, top: str, progress: Progress) -> None:
    """Download layer ``top`` and what it backs onto (down to the base) into ``view``'s layers, chained locally."""
    name: str | None = top
    for _ in range(MAX_CHAIN):
        if name is None or base_of_volume(name) is not None or view.layers.path(name).is_file():
            return
        under = remote.backing_name(name)
        local = view.layers.path(name)
        progress(f"downloading layer {name}", None)
        remote.storage.download(name, local, sparse=True)
        if under is not None:
            base = base_of_volume(under)
            backing = view.resolve_image(base[0]) if base else view.layers.path(under)
            qemu_img.rebase_unsafe(local, backing, base[1] if base else "qcow2")
        name = under
    raise ValueError(f"the chain under layer {top} does not end")


def local_copy(files: ProjectFiles, fetch: list[State], work: Path, progress: Progress = no_progress) -> ProjectFiles:
    """A copy of remote project ``files`` in ``work`` whose layers are local files: those of ``fetch``'s chains.

    The copy's record names no host, so everything that reads it (digests, the bundle writer) finds files.
    """
    project = files.load()
    view = ProjectFiles(work / VIEW_DIR, files.resolve_image)
    shutil.copytree(files.root, view.root, ignore=shutil.ignore_patterns("layers", ".import-*"))
    view.write(dataclasses.replace(project, storage_owner=None))
    view.layers.dir.mkdir(parents=True, exist_ok=True)
    assert isinstance(files.layers, RemoteLayerStore)
    for state in fetch:
        for layer in state.layers.values():
            _fetch_chain(files.layers, view, layer, progress)
    return view


AddState = Callable[..., State]


def add_state_through_copy(
    files: ProjectFiles, add: AddState, incoming: IncomingState, *, work: Path, progress: Progress = no_progress
) -> State:
    """``add(view, incoming, work=..., progress=...)`` on a local copy, then the new layers uploaded to the host.

    A memory image stays behind: a remote host resumes none that vmlog brought (see docs/remote.md).
    """
    states = files.states()
    since = incoming.bundle.since
    fetch = [states[since["state_id"]]] if since and since["state_id"] in states else []
    view = local_copy(files, fetch, work, progress)
    incoming = dataclasses.replace(incoming, memory=False)
    state = add(view, incoming, work=work, progress=progress)
    project = files.load()
    _upload_layers(files, view, project, state, progress)
    state = dataclasses.replace(state, memory=None, backend=None)
    files.write_state(state)
    for kept in view.state_dir(state.id).iterdir():  # what the import keeps beside the record (the sender's log)
        if kept.is_file() and kept.name not in (STATE_FILE, MEMORY_FILE):
            shutil.copyfile(kept, files.state_dir(state.id) / kept.name)
    return state


def _upload_layers(files: ProjectFiles, view: ProjectFiles, project: Project, state: State,
                   progress: Progress) -> None:
    assert isinstance(files.layers, RemoteLayerStore)
    uploaded: list[str] = []
    try:
        for label, layer in state.layers.items():
            local = view.layers.path(layer)
            if state.parent is not None:
                under = files.states()[state.parent].layers[label]
                qemu_img.rebase_unsafe(local, view.layers.dir / under, "qcow2")
            else:
                root = project.roots[label]
                if root.image_sha256 is None:
                    under = root.file or ""
                    qemu_img.rebase_unsafe(local, view.layers.dir / under, root.format)
                else:
                    files.layers.root_image(root.image_sha256, root.format, files.resolve_image(root.image_sha256))
                    name = base_volume_name(root.image_sha256, root.format)
                    qemu_img.rebase_unsafe(local, view.layers.dir / name, root.format)
            progress(f"uploading layer {layer} to {project.uri}", None)
            files.layers.storage.upload(local, layer, verify=True)
            uploaded.append(layer)
    except BaseException:
        files.layers.remove_all(uploaded)
        raise
