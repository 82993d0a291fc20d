"""What a project's archive holds: its bases, every layer its states' chains use (each once), its files, per-state OVFs.

Layers are shared between states (a child's layer backs onto its parent's), so walking every state's
chain and keeping each layer file once stores each delta exactly once, whatever the tree's shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog.archive import format as af
from vmlog.archive.ovf2 import ChainFile, state_descriptor
from vmlog.archive.releases import pinned_releases, release_objects
from vmlog.errors import InvalidInput
from vmlog.projects import qcow2_peek
from vmlog.projects.model import Project, State
from vmlog.projects.state_index import INDEX_FILE
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage


@dataclass(frozen=True)
class BaseSource:
    image: StoredImage
    format: str


@dataclass(frozen=True)
class LayerSource:
    name: str
    path: Path
    virtual_size: int
    backing: dict[str, str] | None  # {"layer": name} or {"base": sha256}
    archived_backing: str | None  # the backing file name the archived copy carries


@dataclass
class ArchivePlan:
    project: Project
    bases: dict[str, BaseSource] = field(default_factory=dict)
    layers: dict[str, LayerSource] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list)
    small: dict[str, bytes] = field(default_factory=dict)  # member name -> content (project files, OVFs, logbook)
    disk_files: dict[str, str] = field(default_factory=dict)  # spec disks that are project files: label -> relpath
    releases: list[dict[str, Any]] = field(default_factory=list)  # the pinned releases the states use
    release_objects: dict[str, Path] = field(default_factory=dict)  # release cache key -> its file
    notes: list[str] = field(default_factory=list)

    def source_bytes(self) -> int:
        layers = sum(s.path.stat().st_size for s in self.layers.values())
        objects = sum(p.stat().st_size for p in self.release_objects.values())
        return sum(b.image.size for b in self.bases.values()) + layers + objects


def _walk_chain(files: ProjectFiles, project: Project, plan: ArchivePlan, label: str, top: str,
                resolve: Callable[[str], StoredImage]) -> list[str]:
    """Add the layers under ``top`` (and their base) to ``plan``; the chain's layer names, lowest first."""
    chain: list[str] = []
    name: str | None = top
    layers_dir = files.layers.dir.resolve()
    while name is not None:
        chain.append(name)
        if name in plan.layers:
            break
        path = files.layers.path(name)
        header = qcow2_peek.read_header(path)
        backing, archived, parent = None, None, None
        if header.backing_name is not None:
            target = (files.layers.dir / header.backing_name).resolve()
            root = project.roots[label]
            if target.parent == layers_dir and target.name != name:
                parent = target.name
                backing, archived = {"layer": parent}, header.backing_name
            elif root.image_sha256 is not None and target == resolve(root.image_sha256).path.resolve():
                image = resolve(root.image_sha256)
                plan.bases.setdefault(image.sha256, BaseSource(image, root.format))
                backing, archived = {"base": image.sha256}, "../" + af.base_file(image.sha256, root.format)
            else:
                raise InvalidInput(f"layer {name} backs onto {header.backing_name}, outside the project and its base",
                                   fix="run `vml doctor --repair`, then archive again")
        af.check_layer_name(name)
        plan.layers[name] = LayerSource(name, path, header.virtual_size, backing, archived)
        name = parent
    return list(reversed(chain))


def _chain_files(plan: ArchivePlan, top: str) -> list[ChainFile]:
    files: list[ChainFile] = []
    name: str | None = top
    while name is not None:
        layer = plan.layers[name]
        files.append(ChainFile(f"layers/{name}", "qcow2", layer.virtual_size))
        backing = layer.backing or {}
        if "base" in backing:
            base = plan.bases[backing["base"]]
            files.append(ChainFile(af.base_file(base.image.sha256, base.format), base.format, layer.virtual_size))
        name = backing.get("layer")
    return list(reversed(files))


def _project_files(files: ProjectFiles, states: dict[str, State], plan: ArchivePlan) -> None:
    """The project's own small files (records, seeds, setup, sender logbooks), not layers or memory images."""
    memory = {files.state_dir(s.id) / s.memory for s in states.values() if s.memory}
    root = files.root
    for directory, dirs, names in os.walk(root):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d != files.layers.dir)
        for file_name in sorted(names):
            path = here / file_name
            rel = path.relative_to(root).as_posix()
            if file_name.startswith(".") or rel == INDEX_FILE or path in memory or path.is_symlink():
                continue
            size = path.stat().st_size
            member = af.project_member(rel)
            try:
                af.check_member_name(member)
            except Exception:
                plan.notes.append(f"left out {rel}: a name the archive format does not carry")
                continue
            if size > af.MAX_SMALL_MEMBER:
                plan.notes.append(f"left out {rel}: {size} bytes, over the {af.MAX_SMALL_MEMBER} of a project file")
                continue
            data = path.read_bytes()
            if b"PRIVATE KEY-----" in data[:200]:  # an archive is for others to read years later: never a secret
                plan.notes.append(f"left out {rel}: a private key")
                continue
            plan.small[member] = data
    if memory:
        plan.notes.append(f"left out {len(memory)} memory image(s): tied to this machine's hypervisor")


def make_plan(files: ProjectFiles, project: Project, states: dict[str, State], logbook_rows: list[dict[str, Any]],
              resolve: Callable[[str], StoredImage], release_cache: Path | None = None) -> ArchivePlan:
    """Everything the archive of ``project`` holds, with each layer and base once (and the releases' objects)."""
    plan = ArchivePlan(project)
    plan.releases = pinned_releases(states)
    if plan.releases and release_cache is not None:
        plan.release_objects, notes = release_objects(plan.releases, release_cache)
        plan.notes.extend(notes)
    _project_files(files, states, plan)
    for state in sorted(states.values(), key=lambda s: (s.created, s.id)):
        chains: dict[str, list[ChainFile]] = {}
        for label, top in sorted(state.layers.items()):
            _walk_chain(files, project, plan, label, top, resolve)
            chains[label] = _chain_files(plan, top)
        spec = state.spec or project.spec
        cpus, memory = spec.get("cpus", 1), spec.get("memory_mib", 512)
        plan.small[af.ovf_member(state.id)] = state_descriptor(
            f"{project.name}-{state.name or state.id[:8]}", chains, cpus=int(cpus), memory_mib=int(memory),
            annotation=state.message)
        plan.states.append({"id": state.id, "name": state.name, "parent": state.parent, "disks": dict(state.layers),
                            "message": state.message, "created": state.created, "ovf": af.ovf_member(state.id)})
    root = files.root.resolve()
    for disk in project.spec.get("disks") or []:
        path = Path(str(disk.get("path") or "")).resolve()
        if disk.get("label") not in project.roots and path.is_relative_to(root):
            rel = path.relative_to(root).as_posix()
            if af.project_member(rel) in plan.small:
                plan.disk_files[str(disk["label"])] = rel
    plan.small[af.LOGBOOK] = (json.dumps(logbook_rows, indent=1, sort_keys=True) + "\n").encode()
    return plan
