"""The native-tree side of state bundles: export and import for VirtualBox and VMware projects.

A bundle is the same whichever hypervisor made it: per disk, the clusters whose content differs from
the base appliance, and the ``since`` digest over guest-visible content
(:func:`vmlog.app.exchange.layers_digest`). What differs is how a state's disk is read and
written here:

* **Reading a state** (export, and the ``since`` state of an incremental import): the state's disk
  as its snapshot froze it, without restoring anything. VMware: the snapshot's frozen delta VMDK from
  the ``.vmsd``, read by qemu-img along its ``parentFileNameHint`` chain. VirtualBox: the snapshot's
  differencing image flattened by VirtualBox's own ``clonemedium`` (qemu-img cannot read differencing
  VDIs). From it a *content layer* is made: a qcow2 on the store's base holding only the clusters whose
  bytes differ from the base (:func:`vmlog.bundles.delta.write_delta`, a comparison by content, so
  a flattened disk costs one read of the disk, not a copy of every allocated cluster). The bundle
  writer, the digest and the reader all work on content layers as they do on libvirt's overlays.
* **Writing a state** (import): the VM is stopped on the state the bundle builds on (its ``since``
  state, restored natively, or the base for a full bundle); its current disk is made to show the
  bundle's content, then a native snapshot records it under the sender's state id. VMware: only the
  clusters that differ are written into the VM's current delta VMDK through qemu-nbd; the base VMDK is
  never opened for writing, so its CID and every ``parentCID`` stay valid. VirtualBox: VirtualBox
  itself copies the content into its current differencing image (``clonemedium --existing``, see
  :meth:`~hypervisors.virtualbox.backend.VirtualBoxHypervisor.load_disk`); the shared base keeps its
  UUID. The new snapshot's native parent is the ``since`` state's snapshot, so vmlog's tree and the
  hypervisor's agree.

The import writes a ``save`` entry in the native-tree journal before the snapshot, so ``vml doctor
--repair`` finishes an import interrupted after the snapshot (with the sender's id) or forgets one
interrupted before.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypervisors import qemu_img
from hypervisors.base import Hypervisor, VMState
from vmlog import fsutil
from vmlog.bundles import BundleReader, BundleRejected, LocalReference, VerifiedBundle
from vmlog.bundles.delta import DELTA_CLUSTER_SIZE, write_delta
from vmlog.bundles.nbd import NbdImage
from vmlog.errors import InvalidInput, NotFound
from vmlog.projects.driver import Progress, no_progress
from vmlog.projects.model import Project, State
from vmlog.projects.native_tree import NativeTree, is_native_project, journal_path, native_name
from vmlog.projects.store import ProjectFiles
from vmlog.store.images import StoredImage

__all__ = ["StateReader", "add_state", "base_labels", "is_native_project", "native_base_of", "state_reader"]

COMPARE_CHUNK = 4 << 20

LayerOf = Callable[[State], dict[str, Path]]


def base_labels(project: Project) -> list[str]:
    """The disks of a native project that sit on the base appliance (scratch disks do not travel)."""
    return sorted(label for label, root in project.roots.items() if root.image_sha256)


def _open_backend(project: Project) -> Hypervisor:
    from hypervisors import registry

    return registry.open_backend(project.backend, **project.backend_options)


def native_base_of(files: ProjectFiles, project: Project) -> tuple[Path, str] | None:
    """The shared base file the VM's system disk chains onto (the base converted to its format)."""
    for disk in files.vm_spec(project).disks:
        if disk.label in base_labels(project):
            return Path(disk.path), disk.format
    return None


# -- reading a state ------------------------------------------------------------------------------
def _vmware_snapshot_disks(backend: Hypervisor, vm: str, snapshot_id: str) -> dict[str, Path]:
    """label -> the delta VMDK snapshot ``snapshot_id`` froze (``snapshotN.diskM.node/fileName``)."""
    from hypervisors.vmware import vmx

    vmx_path: Path = backend.vmx_path(vm)  # type: ignore[attr-defined]
    nodes = {
        value: key.removeprefix("vmlog.disk.")
        for key, value in vmx.read(vmx_path).items()
        if key.startswith("vmlog.disk.")
    }
    tree = vmx.read(vmx_path.with_suffix(".vmsd"))
    prefix = next(
        (k.removesuffix(".uid") for k, v in tree.items() if k.endswith(".uid") and v == snapshot_id), None
    )
    if prefix is None:
        raise NotFound(f"the VMware snapshot {snapshot_id} of {vm!r} is gone", fix="vml doctor")
    disks: dict[str, Path] = {}
    for key, node in tree.items():
        if key.startswith(prefix + ".disk") and key.endswith(".node") and node in nodes:
            disks[nodes[node]] = vmx_path.parent / tree[key.removesuffix(".node") + ".fileName"]
    return disks


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
    """Content layers of a native project's states, made on demand in a private work directory."""

    def __init__(
        self, files: ProjectFiles, project: Project, image: StoredImage,
        native_base: tuple[Path, str] | None, backend: Hypervisor, work: Path,
    ) -> None:
        self.files, self.project, self.image = files, project, image
        self.native_base, self.backend, self.work = native_base, backend, work
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
        vm = self.project.vm_name
        labels = base_labels(self.project)
        layers: dict[str, Path] = {}
        if hasattr(self.backend, "export_snapshot_disk"):  # VirtualBox: its own tool flattens
            for label in labels:
                flat = self.work / f"{state.id}-{label}.flat.vdi"
                self.backend.export_snapshot_disk(vm, state.native_id, label, flat, "vdi")  # type: ignore[attr-defined]
                layers[label] = content_layer(flat, "vdi", self.image, self.work / f"{state.id}-{label}.qcow2")
                flat.unlink(missing_ok=True)
        elif self.backend.native_disk_format == "vmdk":
            disks = _vmware_snapshot_disks(self.backend, vm, state.native_id)
            for label in labels:
                if label not in disks:
                    raise NotFound(f"the VMware snapshot of {state.label()} has no disk {label!r}", fix="vml doctor")
                layers[label] = content_layer(
                    disks[label], "vmdk", self.image, self.work / f"{state.id}-{label}.qcow2", self.native_base
                )
        else:
            raise InvalidInput(
                f"vmlog cannot read the snapshots of the {self.backend.name} backend",
                fix="export from a libvirt, VirtualBox or VMware project",
            )
        self._made[state.id] = layers
        return layers


@contextmanager
def state_reader(
    ctx_cache: Path, files: ProjectFiles, project: Project, image: StoredImage,
    native_base: tuple[Path, str] | None = None,
) -> Iterator[StateReader]:
    """A :class:`StateReader` whose layers are deleted when the block ends."""
    ctx_cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vmlstate-native-", dir=ctx_cache))
    try:
        with _open_backend(project) as backend:
            yield StateReader(files, project, image, native_base, backend, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


def _load(backend: Hypervisor, vm: str, label: str, layer: Path) -> None:
    """Make the stopped VM's current disk ``label`` show the content layer's bytes."""
    if hasattr(backend, "load_disk"):  # VirtualBox writes its differencing images itself
        backend.load_disk(vm, label, layer, "qcow2")  # type: ignore[attr-defined]
        return
    top = backend.disk_tops(vm)[label]
    write_changes(layer, top, backend.native_disk_format)


def _stop_cleanly(backend: Hypervisor, vm: str) -> None:
    state = backend.state(vm)
    if state == VMState.SAVED:  # a restored snapshot's memory: the imported disk replaces what it saw
        backend.discard_saved_state(vm)
    elif state != VMState.STOPPED:
        raise InvalidInput(
            f"the VM is {state.value}; a state is imported into a stopped VM",
            fix="`vml down` the project first",
        )


def add_state(
    ctx_cache: Path,
    files: ProjectFiles,
    reader: BundleReader,
    bundle: VerifiedBundle,
    image: StoredImage,
    native_base: tuple[Path, str] | None,
    *,
    describe: str,
    digest_of: Callable[[ProjectFiles, Project, dict[str, Path]], str],
    progress: Progress = no_progress,
) -> State:
    """Rebuild the bundle's state as a native snapshot of the project's VM (the caller holds the lock).

    A full bundle goes into a project that has no state yet; an incremental one on its ``since``
    state, which is restored first (the live disk must hold no unsaved work). Afterwards the VM sits
    on the imported state.
    """
    project = files.load()
    states = files.states()
    sid = bundle.state["id"]
    labels = base_labels(project)  # the caller checked they match the bundle's disks
    if any(project.roots[label].image_sha256 != image.sha256 for label in labels):
        raise InvalidInput(
            f"project {project.name!r} does not sit on the bundle's base {image.name} {image.version}",
            fix="import into a new project (--project NEWNAME)",
        )
    since = bundle.since
    with _open_backend(project) as backend:
        driver = NativeTree(backend)
        driver.ensure_vm(files, project)
        vm = project.vm_name
        if backend.state(vm) not in (VMState.STOPPED, VMState.CRASHED, VMState.SAVED) or (
            backend.state(vm) == VMState.SAVED and since is None
        ):
            raise InvalidInput(
                f"the VM of {project.name!r} is {backend.state(vm).value}; states are imported into a stopped VM",
                fix="`vml down` the project first",
            )
        if driver.live_has_changes(files):
            raise InvalidInput(
                f"the VM of {project.name!r} holds unsaved changes, which the import would replace",
                fix="save them with `vml state save` (or restore a state with --discard), then import again",
            )
        parent: State | None = None
        with state_reader(ctx_cache, files, project, image, native_base) as state_layers:
            since_layers = since_digest = None
            if since is not None:
                parent = states[since["state_id"]]
                progress("reading the since state from its snapshot", 0.3)
                since_layers = state_layers.layers(parent)
                since_digest = digest_of(files, project, since_layers)
                if since_digest != since["digest"]:
                    raise BundleRejected(
                        "since",
                        f"state {parent.label()} here differs from the sender's state it builds on",
                        fix="ask the sender for a full bundle (without --since)",
                    )
            elif project.current is not None:
                raise InvalidInput(
                    f"project {project.name!r} already has states in its {backend.name} snapshot tree; a"
                    " full bundle starts a new tree",
                    fix="import into a new project (--project NEWNAME)",
                )
            progress("writing the layers", 0.5)
            staging = state_layers.work / "bundle"
            materialised = reader.materialise(
                staging,
                base=LocalReference(image.path, image.qemu_format, image.sha256),
                since_layers=since_layers,
                since_id=since["state_id"] if since else None,
                since_digest=since_digest,
            )
            full: dict[str, Path] = {}
            for label, delta in materialised.disks.items():  # one layer on the base per disk
                full[label] = content_layer(delta, "qcow2", image, state_layers.work / f"import-{label}.qcow2")
            if parent is not None:
                progress(f"restoring the {backend.name} snapshot of {parent.label()}", 0.6)
                driver.restore(files, parent)
            _stop_cleanly(backend, vm)
            progress(f"writing the disks into the {backend.name} VM", 0.7)
            for label, layer in full.items():
                _load(backend, vm, label, layer)
        wanted = bundle.state.get("name")
        state_name = wanted if isinstance(wanted, str) and wanted else None
        if state_name and any(s.name == state_name for s in states.values()):
            state_name = f"{state_name}-{sid[:8]}"
        message = str(bundle.state.get("message") or "")[:2000] or f"imported ({describe})"
        author = str(bundle.state.get("author") or "unknown")[:200]
        created = bundle.state.get("created")
        created = float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0
        fsutil.atomic_write_json(journal_path(files), {
            "op": "save", "state": sid, "parent": parent.id if parent else None, "name": state_name,
            "message": message, "author": author, "created": created or time.time(),
        })
        progress(f"taking the {backend.name} snapshot", 0.9)
        try:
            native_id = backend.snapshot_create(vm, native_name(state_name, sid))
        except BaseException:
            journal_path(files).unlink(missing_ok=True)
            raise
    mounts = bundle.state.get("release_mounts")
    state = State(
        id=sid,
        parent=parent.id if parent else None,
        name=state_name,
        message=message,
        author=author,
        created=created,
        layers={},
        spec=dict(project.spec),
        release_mounts=[m for m in mounts if isinstance(m, dict)] if isinstance(mounts, list) else [],
        native_id=native_id,
    )
    files.write_state(state)
    project = files.load()
    project.current = sid
    files.write(project)  # commit point
    journal_path(files).unlink(missing_ok=True)
    fsutil.fsync_dir(files.root)
    return state
