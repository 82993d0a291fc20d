"""The native-tree side of state bundles: export and import for VirtualBox and VMware projects.

A bundle is the same whichever hypervisor made it: per disk, the clusters whose content differs from
the base appliance, and the ``since`` digest over guest-visible content
(:func:`vmlog.projects.digest.layers_digest`). What differs is how a state's disk is read and
written here:

* **Reading a state** (export, and the ``since`` state of an incremental import): the state's disk
  as its snapshot froze it, without restoring anything, as the backend hands it over
  (:meth:`~hypervisors.base.Hypervisor.snapshot_disks`): VMware's frozen delta VMDK in place, read by
  qemu-img along its chain, or VirtualBox's differencing image flattened by its own tool into a copy
  (qemu-img cannot read differencing VDIs). From it a *content layer* is made: a qcow2 on the store's
  base holding only the clusters whose bytes differ from the base
  (:func:`vmlog.bundles.delta.write_delta`, a comparison by content, so a flattened disk costs one
  read of the disk, not a copy of every allocated cluster). The bundle writer, the digest and the
  reader all work on content layers as they do on libvirt's overlays.
* **Writing a state** (import): the VM is stopped on the state the bundle builds on (its ``since``
  state, restored natively, or the base for a full bundle); its current disk is made to show the
  bundle's content, then a native snapshot records it under the sender's state id. VMware: only the
  clusters that differ are written into the VM's current delta VMDK through qemu-nbd; the base VMDK is
  never opened for writing, so its CID and every ``parentCID`` stay valid. VirtualBox: VirtualBox
  itself copies the content into its current differencing image (``clonemedium --existing``, see
  :meth:`~hypervisors.virtualbox.backend.VirtualBoxHypervisor.load_disk`); the shared base keeps its
  UUID. The new snapshot's native parent is the ``since`` state's snapshot, so vmlog's tree and the
  hypervisor's agree.

:meth:`vmlog.projects.native_tree.NativeTree.add_state` runs the import: it writes a ``save`` entry in
the native-tree journal before the snapshot, so ``vml doctor --repair`` finishes an import
interrupted after the snapshot (with the sender's id) or forgets one interrupted before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hypervisors import qemu_img
from hypervisors.base import Capability, Hypervisor, VMState
from vmlog.bundles.delta import DELTA_CLUSTER_SIZE, write_delta
from vmlog.bundles.nbd import NbdImage
from vmlog.errors import InvalidInput, NotFound
from vmlog.projects.driver import IncomingState, Progress
from vmlog.projects.incoming import base_reference, check_since
from vmlog.projects.model import Project, State
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage

__all__ = ["StateReader", "base_labels", "bundle_layers", "content_layer", "load_disk", "native_base_of",
           "stop_cleanly", "write_changes"]

COMPARE_CHUNK = 4 << 20

LayerOf = Callable[[State], dict[str, Path]]


def base_labels(project: Project) -> list[str]:
    """The disks of a native project that sit on the base appliance (scratch disks do not travel)."""
    return sorted(label for label, root in project.roots.items() if root.image_sha256)


def native_base_of(files: ProjectFiles, project: Project) -> tuple[Path, str] | None:
    """The shared base file the VM's system disk chains onto (the base converted to its format)."""
    for disk in files.vm_spec(project).disks:
        if disk.label in base_labels(project):
            return Path(disk.path), disk.format
    return None


# -- reading a state ------------------------------------------------------------------------------
def content_layer(
    src: Path, src_format: str, image: StoredImage, out: Path, chain_root: tuple[Path, str] | None = None
) -> Path:
    """A qcow2 on the store's base image holding exactly the clusters where ``src`` differs from it.

    When ``src`` is a chain on the base (or on ``chain_root``, the base converted to the hypervisor's
    format: same content), only the extents allocated above it are read; a flattened disk has every
    cluster compared.
    """
    reference, ref_format = image.path, image.qemu_format
    if chain_root is not None and _in_chain(src, src_format, chain_root[0]):
        reference, ref_format = chain_root
    write_delta(src, src_format, reference, ref_format, out)
    qemu_img.rebase_unsafe(out, image.path, image.qemu_format)
    return out


def _in_chain(top: Path, fmt: str, member: Path) -> bool:
    out = qemu_img.run(["info", "--backing-chain", "--output=json", "-f", fmt, str(top)])
    entries = json.loads(out)
    entries = entries if isinstance(entries, list) else [entries]
    return Path(member).resolve() in {Path(e["filename"]).resolve() for e in entries}


class StateReader:
    """Content layers of a native project's states, made on demand in the caller's work directory."""

    def __init__(
        self, project: Project, image: StoredImage, native_base: tuple[Path, str] | None, backend: Hypervisor,
        work: Path,
    ) -> None:
        self.project, self.image, self.native_base, self.backend, self.work = project, image, native_base, backend, work
        self._made: dict[str, dict[str, Path]] = {}

    def layers(self, state: State) -> dict[str, Path]:
        """label -> content layer of ``state`` (a qcow2 on the store base), made once per state."""
        if state.id in self._made:
            return self._made[state.id]
        if state.native_id is None:
            raise InvalidInput(
                f"state {state.label()} has no {self.backend.name} snapshot",
                fix="`vml doctor` to check the project",
            )
        self.backend.require(Capability.SNAPSHOT_DISKS, "export a state from its snapshot")
        frozen_dir = self.work / f"{state.id}-frozen"
        frozen_dir.mkdir(parents=True, exist_ok=True)
        disks = self.backend.snapshot_disks(self.project.vm_name, state.native_id, frozen_dir)
        layers: dict[str, Path] = {}
        for label in base_labels(self.project):
            if label not in disks:
                raise NotFound(
                    f"the {self.backend.name} snapshot of {state.label()} has no disk {label!r}", fix="vml doctor"
                )
            disk = disks[label]
            chain_root = None if disk.flattened else self.native_base
            out = self.work / f"{state.id}-{label}.qcow2"
            layers[label] = content_layer(disk.path, disk.format, self.image, out, chain_root)
            if disk.flattened:
                disk.path.unlink(missing_ok=True)
        self._made[state.id] = layers
        return layers


# -- writing a state ------------------------------------------------------------------------------
def _allocated_ranges(layer: Path) -> list[tuple[int, int]]:
    """Cluster-aligned ranges the content layer holds itself (depth 0)."""
    extents = json.loads(qemu_img.run(["map", "--output=json", "-f", "qcow2", str(layer)]))
    cs = DELTA_CLUSTER_SIZE
    ranges: list[tuple[int, int]] = []
    for ext in extents:
        if ext["depth"] != 0:
            continue
        start, end = ext["start"] // cs * cs, -(-(ext["start"] + ext["length"]) // cs) * cs
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))
    return ranges


def write_changes(layer: Path, disk: Path, disk_format: str) -> int:
    """Write into ``disk`` the clusters of the content layer that differ from what it shows; bytes written.

    ``disk`` is the VM's current top (a VMDK delta); its parents are only read.
    """
    written = 0
    cs = DELTA_CLUSTER_SIZE
    with NbdImage(layer, "qcow2") as src, NbdImage(disk, disk_format, writable=True) as dst:
        size = min(src.size, dst.size)
        for start, end in _allocated_ranges(layer):
            for off in range(start, min(end, size), COMPARE_CHUNK):
                n = min(COMPARE_CHUNK, min(end, size) - off)
                new, old = src.read(off, n), dst.read(off, n)
                if new == old:
                    continue
                for pos in range(0, n, cs):
                    chunk = new[pos : pos + cs]
                    if chunk != old[pos : pos + cs]:
                        if chunk.count(0) == len(chunk):
                            dst.write_zeroes(off + pos, len(chunk))
                        else:
                            dst.write(off + pos, chunk)
                        written += len(chunk)
        dst.flush()
    return written


def load_disk(backend: Hypervisor, vm: str, label: str, layer: Path) -> None:
    """Make the stopped VM's current disk ``label`` show the content layer's bytes."""
    if hasattr(backend, "load_disk"):  # VirtualBox writes its differencing images itself
        backend.load_disk(vm, label, layer, "qcow2")  # type: ignore[attr-defined]
        return
    top = backend.disk_tops(vm)[label]
    write_changes(layer, top, backend.native_disk_format)


def stop_cleanly(backend: Hypervisor, vm: str) -> None:
    state = backend.state(vm)
    if state == VMState.SAVED:  # a restored snapshot's memory: the imported disk replaces what it saw
        backend.discard_saved_state(vm)
    elif state != VMState.STOPPED:
        raise InvalidInput(
            f"the VM is {state.value}; a state is imported into a stopped VM",
            fix="`vml down` the project first",
        )


def bundle_layers(
    files: ProjectFiles, project: Project, states: dict[str, State], incoming: IncomingState, layers_of: LayerOf,
    work: Path, progress: Progress,
) -> tuple[State | None, dict[str, Path]]:
    """The bundle's disks as content layers on the base, and the ``since`` state they build on (checked).

    Nothing in the project changes; the layers are made in ``work``.
    """
    since = incoming.bundle.since
    parent = since_layers = since_digest = None
    if since is not None:
        parent = states[since["state_id"]]
        progress("reading the since state from its snapshot", 0.3)
        since_layers = layers_of(parent)
        since_digest = check_since(files, project, parent, since_layers, since["digest"])
    progress("writing the layers", 0.5)
    materialised = incoming.reader.materialise(
        work / "bundle",
        base=base_reference(incoming.image),
        since_layers=since_layers,
        since_id=parent.id if parent else None,
        since_digest=since_digest,
    )
    return parent, {  # one layer on the base per disk
        label: content_layer(delta, "qcow2", incoming.image, work / f"import-{label}.qcow2")
        for label, delta in materialised.disks.items()
    }
