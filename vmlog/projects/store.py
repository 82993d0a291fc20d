"""Project files on disk: ``projects/<name>/project.json``, ``states/<id>/state.json``, ``layers/*.qcow2``.

Every metadata file is written atomically. ``project.json`` is the commit point of every change:
data files (layers, memory images, ``state.json``) are written first, then ``project.json`` names
them. A state exists if and only if its ``state.json`` does; a directory without one is debris.
New projects are built in a hidden ``.new-*`` directory and renamed into place; removed ones are
renamed to ``.trash-*`` first, so both are all-or-nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from hypervisors.spec import VMSpec
from vmlog import fsutil
from vmlog.errors import NotFound
from vmlog.projects import disk_usage
from vmlog.projects.disk_usage import Usage, read_usage
from vmlog.projects.layers import LayerStore
from vmlog.projects.model import Project, State
from vmlog.projects.state_index import INDEX_FILE, StateIndex

PROJECT_FILE = "project.json"
STATE_FILE = "state.json"
NEW_PREFIX = ".new-"
TRASH_PREFIX = ".trash-"

ImageResolver = Callable[[str], Path]


class ProjectFiles:
    """The directory of one project."""

    def __init__(self, root: Path, resolve_image: ImageResolver) -> None:
        self.root = Path(root)
        self.resolve_image = resolve_image

    # made when first used: a listing of many projects reads only ``project.json`` and the usage cache
    @cached_property
    def layers(self) -> LayerStore:
        """Files in ``layers/``, or the volumes on the remote host the project lives on."""
        directory = self.root / "layers"
        try:
            project = Project.from_dict(fsutil.read_json(self.project_file))
        except FileNotFoundError:
            return LayerStore(directory)
        if not project.remote:
            return LayerStore(directory)
        from vmlog.projects import remote_layers  # here: local projects never pay for it

        return remote_layers.layer_store(directory, project)

    @cached_property
    def states_dir(self) -> Path:
        return self.root / "states"

    @cached_property
    def index(self) -> StateIndex:
        return StateIndex(self.root / INDEX_FILE, self.states_dir, self._scan_states)

    @property
    def project_file(self) -> Path:
        return self.root / PROJECT_FILE

    def exists(self) -> bool:
        return self.project_file.is_file()

    def load(self) -> Project:
        try:
            return Project.from_dict(fsutil.read_json(self.project_file))
        except FileNotFoundError:
            raise NotFound(
                f"no project at {self.root}", fix="list projects with `vml project list`"
            ) from None

    def write(self, project: Project) -> None:
        fsutil.atomic_write_json(self.project_file, project.to_dict())

    def disk_bytes(self) -> int:
        """Bytes the project's files take on the host disk (layers are sparse: allocated blocks count)."""
        return disk_usage.tree_allocated(str(self.root))

    def usage(self, project: Project) -> Usage:
        """Disk use and state count as a listing shows them, from the cache kept beside the records."""
        return read_usage(self.root, set(project.live.values()))

    # -- states -----------------------------------------------------------------------------
    def state_dir(self, state_id: str) -> Path:
        return self.states_dir / state_id

    def states(self) -> dict[str, State]:
        """Every state of the project, read from the index (one file) kept with the records."""
        return self.index.load()

    def _scan_states(self) -> dict[str, State]:
        """Every ``state.json``, one by one: what the index is built from.

        The usage cache goes with a rebuilt index: whatever left the index stale (a crash, another
        writer, a repair) may have changed files the cache has sizes for.
        """
        disk_usage.drop(self.root)
        result: dict[str, State] = {}
        if not self.states_dir.is_dir():
            return result
        for directory in self.states_dir.iterdir():
            path = directory / STATE_FILE
            if path.is_file():
                state = State.from_dict(fsutil.read_json(path))
                result[state.id] = state
        return result

    def write_state(self, state: State) -> None:
        """Write an immutable ``state.json`` (data files of the state must already be durable)."""
        self.index.begin()
        directory = self.state_dir(state.id)
        directory.mkdir(parents=True, exist_ok=True)
        fsutil.fsync_dir(self.states_dir)
        fsutil.atomic_write_json(directory / STATE_FILE, state.to_dict())
        self.index.put(state)

    def rewrite_state(self, state: State) -> None:
        """Replace the record of an existing state (rename, re-parenting when a parent is removed)."""
        self.index.begin()
        fsutil.atomic_write_json(self.state_dir(state.id) / STATE_FILE, state.to_dict())
        self.index.put(state)

    def delete_state(self, state_id: str) -> None:
        """Forget a state: its ``state.json`` goes first (atomic), then the rest of its directory."""
        self.index.begin()
        directory = self.state_dir(state_id)
        (directory / STATE_FILE).unlink(missing_ok=True)
        if directory.is_dir():
            fsutil.fsync_dir(directory)
            shutil.rmtree(directory, ignore_errors=True)
            fsutil.fsync_dir(self.states_dir)
        self.index.delete(state_id)

    def memory_path(self, state: State) -> Path | None:
        return self.state_dir(state.id) / state.memory if state.memory else None

    # -- chains -----------------------------------------------------------------------------
    def root_path(self, project: Project, label: str) -> tuple[Path, str]:
        root = project.roots[label]
        if root.file is not None:
            return self.layers.path(root.file), root.format
        assert root.image_sha256 is not None
        sha256 = root.image_sha256
        return self.layers.root_image(sha256, root.format, self.resolve_image(sha256)), root.format

    def layer_under(
        self, project: Project, states: dict[str, State], state_id: str | None, label: str
    ) -> tuple[Path, str]:
        """The file a new layer on top of ``state_id`` backs onto (the chain root for no state)."""
        if state_id is None:
            return self.root_path(project, label)
        return self.layers.path(states[state_id].layers[label]), "qcow2"

    def vm_spec(self, project: Project) -> VMSpec:
        """The project's VM spec with every managed disk pointing at its live layer."""
        spec = VMSpec.from_dict(project.spec)
        disks = []
        for disk in spec.disks:
            if disk.label in project.live:
                disk = type(disk)(
                    path=self.layers.path(project.live[disk.label]),
                    format="qcow2",
                    device=disk.device,
                    readonly=disk.readonly,
                    label=disk.label,
                )
            disks.append(disk)
        return spec.replace(name=project.vm_name, disks=tuple(disks))


class ProjectStore:
    """All projects of one vmlog home."""

    def __init__(self, root: Path, resolve_image: ImageResolver) -> None:
        self.root = Path(root)
        self.resolve_image = resolve_image

    def files(self, name: str) -> ProjectFiles:
        return ProjectFiles(self.root / name, self.resolve_image)

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return []
        root = os.fspath(self.root)
        return sorted(
            name for name in entries
            if not name.startswith(".") and os.path.isfile(os.path.join(root, name, PROJECT_FILE))
        )

    def get(self, name: str) -> ProjectFiles:
        files = self.files(name)
        if not files.exists():
            raise NotFound(f"no project called {name!r}", fix="list projects with `vml project list`")
        return files

    def staging(self, name: str) -> ProjectFiles:
        """A hidden directory to build a new project in; :meth:`publish` makes it appear at once."""
        import secrets

        self.root.mkdir(parents=True, exist_ok=True)
        directory = self.root / f"{NEW_PREFIX}{name}-{secrets.token_hex(4)}"
        directory.mkdir()
        return ProjectFiles(directory, self.resolve_image)

    def publish(self, staged: ProjectFiles, name: str) -> ProjectFiles:
        fsutil.durable_rename(staged.root, self.root / name)
        return self.files(name)

    def rename(self, old: str, new: str) -> None:
        fsutil.durable_rename(self.root / old, self.root / new)

    def trash(self, name: str) -> Path:
        """Move a project out of sight at once; its files are deleted afterwards (or by repair)."""
        import secrets

        dest = self.root / f"{TRASH_PREFIX}{name}-{secrets.token_hex(4)}"
        fsutil.durable_rename(self.root / name, dest)
        return dest
