"""OVA packages: import one (as VirtualBox and VMware export them) as a base image; export one state as a whole VM.

An imported OVA's disks enter the image store like a pulled appliance's, so any backend can start a
project on them. ``vml state export --format ova`` gives colleagues without vmlog one state as an
OVF 1.0 package (descriptor, streamOptimized VMDKs, SHA-256 manifest) that VirtualBox imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors import qemu_img
from vmlog.app import projects
from vmlog.app.session import session
from vmlog.appliances.model import store_name
from vmlog.appliances.ova import write_ova
from vmlog.appliances.ovf_writer import ExportDisk, build_descriptor
from vmlog.appliances.pull import unpack_file
from vmlog.errors import InvalidInput, NotFound
from vmlog.projects import refs
from vmlog.projects.backends import files_driver
from vmlog.projects.bundle_base import base_of
from vmlog.projects.driver import Progress, no_progress, private_work_dir
from vmlog.projects.model import SYSTEM_DISK, Project, State
from vmlog.projects.names import safe_file_part
from vmlog.projects.remote_exchange import local_copy
from vmlog.store.image_gate import detect_format
from vmlog.store.images import StoredImage
from vmlog.workspace import Workspace, workspace

OVA_SUFFIX = ".ova"


@dataclass(frozen=True)
class ImportedOva:
    """The disks an OVA gave, in the store (system disk first), and what was checked on the way."""

    image: StoredImage
    extra_disks: tuple[StoredImage, ...]
    obtained: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image.to_dict(),
            "extra_disks": [image.to_dict() for image in self.extra_disks],
            "obtained": self.obtained,
        }


@dataclass(frozen=True)
class OvaExport:
    """One state written as an OVA."""

    path: Path
    size: int
    project: str
    state_id: str
    disks: tuple[str, ...]  # file names of the disks in the package, system disk first

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "size": self.size, "project": self.project, "state_id": self.state_id,
                "disks": list(self.disks), "format": "ova"}  # fmt: skip


def import_ova(path: Path, *, name: str | None = None, ctx: Workspace | None = None) -> ImportedOva:
    """Store the disks of the OVA ``path`` (its manifest checked); ``project new`` then takes the image by name."""
    ctx = workspace(ctx)
    path = Path(path).expanduser()
    if not path.is_file():
        raise NotFound(f"{path} does not exist")
    kind = detect_format(path)
    if kind not in ("ova", "tar"):
        raise InvalidInput(f"{path.name} is not an OVA (a tar with an OVF descriptor) but {kind}")
    stored = unpack_file(ctx.images, path, "ova", name or store_name(path.stem), "local")
    return ImportedOva(stored.images[0], stored.images[1:], stored.obtained)


def ova_target(out: Path | None, project: Project, state: State) -> Path:
    """``out`` if it names an ``.ova`` file, else ``<out or .>/<project>-<state>.ova``."""
    if out is not None and str(out).endswith(OVA_SUFFIX):
        return Path(out)
    stem = f"{safe_file_part(project.name)}-{safe_file_part(state.name or state.id[:12])}"
    return Path(out or Path.cwd()) / f"{stem}{OVA_SUFFIX}"


def _ordered(layers: dict[str, Path]) -> list[tuple[str, Path]]:
    return sorted(layers.items(), key=lambda item: (item[0] != SYSTEM_DISK, item[0]))


def export_state_ova(
    project_name: str | None,
    ref: str,
    out: Path | None = None,
    *,
    ctx: Workspace | None = None,
    progress: Progress = no_progress,
) -> OvaExport:
    """Write state ``ref`` as one OVA: every disk as a streamOptimized VMDK, CPUs and memory from the state."""
    ctx = workspace(ctx)
    name = projects.resolve_project(project_name, ctx)
    with session(ctx, name, "state export", ref=ref, format="ova") as op:
        files = ctx.projects.get(name)
        project = files.load()
        state = refs.resolve(files.states(), project.current, ref)
        op.state_id = state.id
        target = ova_target(out, project, state)
        if target.exists():
            raise InvalidInput(f"{target} exists", fix="remove it or give another file with --out")
        vm_name = safe_file_part(project.name)
        spec = state.spec or project.spec
        with files_driver(project) as driver, private_work_dir(ctx.home.cache, "ova-") as work:
            image = base_of(ctx.images, project, driver.exchanged_labels(project))
            if project.remote:  # the VMDKs are converted from local files: the state's chain comes down first
                files = local_copy(files, [state], work, progress)
            disks: list[tuple[str, Path]] = []
            with driver.reading_states(files, project, image, work) as layers_of:
                ordered = _ordered(layers_of(state))
                for index, (label, top) in enumerate(ordered, 1):
                    progress(f"writing disk {label} as a streamOptimized VMDK", index / (len(ordered) + 1))
                    vmdk = work / f"{vm_name}-disk{index:03d}.vmdk"
                    qemu_img.convert(top, vmdk, src_format="qcow2", dest_format="vmdk",
                                     options={"subformat": "streamOptimized"})  # fmt: skip
                    disks.append((vmdk.name, vmdk))
            exported = [ExportDisk(n, p.stat().st_size, int(qemu_img.info(p, "vmdk")["virtual-size"]))
                        for n, p in disks]  # fmt: skip
            descriptor = build_descriptor(
                vm_name, exported, cpus=int(spec.get("cpus") or 1), memory_mib=int(spec.get("memory_mib") or 512),
                annotation=f"vmlog project {project.name}, state {state.label()}: {state.message}".strip(": "),
            )  # fmt: skip
            progress("packing the OVA", 0.95)
            write_ova(target, descriptor, f"{vm_name}.ovf", disks)
        op.message = f"exported {state.label()} as OVA {target.name} ({target.stat().st_size / 1e6:.1f} MB)"
        return OvaExport(target, target.stat().st_size, name, state.id, tuple(n for n, _p in disks))
