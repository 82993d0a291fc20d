"""Unpacks a verified archive into a new project's staging directory and makes its records this home's.

Runs only after a first full walk of the archive passed (:func:`vmlog.archive.reader.read_archive`);
the second walk checks every digest again while it writes, so a file changed in between is refused.
The records the archive carries are untrusted too: the project and state records are parsed,
cross-checked with the manifest, and rewritten (name, VM name, disk and console paths) here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hypervisors import qemu_img
from hypervisors.spec import VMSpec
from vmlog import fsutil, safejson
from vmlog.archive import format as af
from vmlog.archive.errors import ArchiveRejected
from vmlog.archive.reader import VerifiedArchive, read_archive
from vmlog.projects.model import ChainRoot, Project, State
from vmlog.projects.state_import import spec_numbers
from vmlog.projects.store import ProjectFiles

_MACHINE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
PROJECT_RECORD = af.project_member("project.json")
DISK_FILES_KEY = "disk_files"  # manifest: spec disks that are project files (a seed), label -> relative path


@dataclass
class Unpacked:
    """What the second walk wrote: base files to enter the store, and the notes for the user."""

    bases: dict[str, Path] = field(default_factory=dict)
    releases: dict[str, Path] = field(default_factory=dict)  # release cache key -> its file in the work directory
    notes: list[str] = field(default_factory=list)


def unpack(verified: VerifiedArchive, staged: ProjectFiles, work: Path, *, have_base: Callable[[str], bool],
           progress: Callable[[int, int], None] | None = None) -> Unpacked:
    """Write the archive's layers and project files into ``staged``, bases missing here into ``work``."""
    result = Unpacked()
    staged.layers.dir.mkdir(parents=True, exist_ok=True)
    bases = {b["sha256"]: b for b in verified.manifest["bases"]}

    def sink(member: af.Member) -> BinaryIO | None:
        if member.kind == "layer":
            return open(staged.layers.dir / member.name[len("layers/") : -len(".zst")], "xb")
        if member.kind == "release":
            (work / "releases").mkdir(exist_ok=True)
            result.releases[af.release_key(member.name)] = target = work / "releases" / af.release_key(member.name)
            return open(target, "xb")
        sha = member.name[len("base/") :].split(".")[0]
        if have_base(sha):
            return None
        target = work / af.base_file(sha, bases[sha]["format"]).split("/")[1]
        result.bases[sha] = target
        return open(target, "xb")

    read_archive(verified.path, sink=sink, expect_manifest=verified.manifest_sha256, progress=progress)
    for name, data in verified.small.items():
        if name.startswith("project/"):
            dest = staged.root / name[len("project/") :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            fsutil.atomic_write_bytes(dest, data)
    return result


def _json(verified: VerifiedArchive, member: str) -> dict[str, Any]:
    try:
        doc = safejson.loads(verified.small[member], what=member)
    except (KeyError, ValueError) as exc:
        raise ArchiveRejected("manifest", f"{member} is missing or not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ArchiveRejected("manifest", f"{member} is not a JSON object")
    return doc


def archived_records(verified: VerifiedArchive) -> tuple[Project, dict[str, State]]:
    """The project and state records the archive carries, checked against its manifest."""
    try:
        project = Project.from_dict(_json(verified, PROJECT_RECORD))
        states = {s["id"]: State.from_dict(_json(verified, af.project_member(f"states/{s['id']}/state.json")))
                  for s in verified.manifest["states"]}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArchiveRejected("manifest", f"a project or state record is malformed ({exc})") from None
    layers = {layer["name"]: layer for layer in verified.manifest["layers"]}
    for entry in verified.manifest["states"]:
        state = states[entry["id"]]
        if state.id != entry["id"] or state.layers != entry["disks"]:
            raise ArchiveRejected("manifest", f"state {entry['id'][:12]}'s record does not match the manifest")
        if state.parent is not None and state.parent not in states:
            raise ArchiveRejected("manifest", f"state {state.id[:12]}'s parent is not in the archive")
    bases = {b["sha256"] for b in verified.manifest["bases"]}
    for label, root in project.roots.items():
        af.check_layer_name(f"{label}-x.qcow2")
        if root.image_sha256 is not None and root.image_sha256 not in bases:
            raise ArchiveRejected("manifest", f"disk {label!r} starts from a base the archive does not hold")
        if root.file is not None and (root.file not in layers or layers[root.file].get("backing") is not None):
            raise ArchiveRejected("manifest", f"disk {label!r} starts from a file the archive does not hold")
    if project.current is not None and project.current not in states:
        raise ArchiveRejected("manifest", "the project's current state is not in the archive")
    return project, states


def attach_layers(staged: ProjectFiles, verified: VerifiedArchive, base_path: Callable[[str], Path]) -> None:
    """Point the lowest layers at the store's copy of their base, then let ``qemu-img check`` read each chain."""
    bases = {b["sha256"]: b for b in verified.manifest["bases"]}
    for layer in verified.manifest["layers"]:
        path = staged.layers.path(layer["name"])
        backing = layer.get("backing") or {}
        if "base" in backing:
            qemu_img.rebase_unsafe(path, base_path(backing["base"]), bases[backing["base"]]["format"])
    for layer in verified.manifest["layers"]:
        path = staged.layers.path(layer["name"])
        try:
            qemu_img.check(path, "qcow2")
        except Exception as exc:  # the data tables of a layer, which only qemu-img reads
            raise ArchiveRejected("qcow2-check", f"layer {layer['name']} fails `qemu-img check` ({exc})") from None
        fsutil.fsync_file(path)


def localise(project: Project, verified: VerifiedArchive, *, name: str, vm_name: str, backend: str,
             root: Path, run_dir: Path) -> tuple[Project, list[str]]:
    """The archived project record as a project of this home; the notes on what could not come along."""
    notes: list[str] = []
    carried = verified.manifest.get(DISK_FILES_KEY) or {}
    spec = dict(project.spec)
    disks = []
    for disk in spec.get("disks") or []:
        label = disk.get("label")
        if label in project.roots:
            disks.append(dict(disk))
        elif isinstance(carried.get(label), str) and af.project_member(carried[label]) in verified.small:
            disks.append({**disk, "path": str(root / carried[label])})
        else:
            notes.append(f"disk {label!r} was a file outside the project; it is not in the archive")
    if spec.get("shared_folders"):
        notes.append("shared folders name the archiving machine's directories; they were left out")
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    machine = extra.get("machine")
    kept = {"machine": machine} if isinstance(machine, str) and _MACHINE.match(machine) else {}
    if set(extra) - set(kept):  # a kernel or initrd here would be a path on the archiving machine (or this one)
        notes.append(f"VM settings naming host files were left out: {', '.join(sorted(set(extra) - set(kept)))}")
    cpus, memory_mib = spec_numbers(spec)
    spec.update(name=vm_name, disks=disks, shared_folders=[], serial_log=str(run_dir / "serial.log"),
                channel_socket=str(run_dir / "channel.sock"), extra=kept, cpus=cpus, memory_mib=memory_mib,
                firmware=spec.get("firmware") if spec.get("firmware") in ("bios", "efi") else "bios")
    try:
        VMSpec.from_dict(spec)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ArchiveRejected("manifest", f"the archived VM spec is malformed ({exc})") from None
    roots = {label: ChainRoot(root_.format, root_.image_sha256, root_.file) for label, root_ in project.roots.items()}
    local = Project(id=project.id, name=name, backend=backend, backend_options={}, vm_name=vm_name, roots=roots,
                    live={}, current=project.current, spec=spec, created=project.created, base=dict(project.base))
    return local, notes
