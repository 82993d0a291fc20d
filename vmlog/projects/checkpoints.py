"""A bounded backing chain however long the history: ancestors consolidated into shared checkpoint images.

Every save adds a layer, and libvirt pays for each file of a chain when a VM starts (measured
with libvirt 9.0 / QEMU 7.2: ``virsh start`` takes 0.43 s with an 11-file chain, 0.69 s with 51,
1.7 s with 101, 5.3 s with 151 and 15.8 s with 200; a chain of 201 files is refused as "too
deeply nested", libvirt's limit being 200). So no live layer sits on a chain of more than
:data:`MAX_CHAIN_FILES` files, where starting costs little more than with one. When a new layer would, the layer
it backs onto (``top``, a frozen state's layer) is re-pointed at a *checkpoint*: a copy of what
``top``'s backing file shows, made by copying that file and rebasing the copy (the safe way, which
writes in every cluster where the two chains differ) onto a short base. ``top``'s content, every
other layer and every state stay byte for byte what they were; only ``top``'s header changes.

The base of a new checkpoint is the nearest checkpoint already under ``top`` while the stack of
checkpoints stays shorter than :data:`MAX_CHECKPOINT_STACK` (so each holds only what changed since
the one below it: shared, not duplicated per state), else the chain's root. Checkpoints live in
``layers/checkpoints/``; one that no layer backs onto any more is deleted by :func:`collect`.
A running VM's chain is bounded the same way without touching a file QEMU holds
(:func:`running_checkpoint`): the checkpoint shows what the live layer backs onto, and the disk
moves onto a new overlay on it. Callers hold the project's lock, so no state is being read meanwhile.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from hypervisors import qemu_img
from vmlog import fsutil
from vmlog.projects import disk_usage, qcow2_peek

MAX_CHAIN_FILES = 40  # files a live layer's chain may have, the live layer and the root included
RUNNING_CHAIN_LIMIT = 190  # where the hypervisor cannot move a running disk: a save refuses beyond this
# (libvirt refuses 201 files at the VM's next start)
MAX_CHECKPOINT_STACK = 12  # checkpoints stacked on each other before a new one starts from the root
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
_WALK_LIMIT = 10_000  # far beyond any chain vmlog makes; stops a loop of backing names


@dataclass(frozen=True)
class Consolidation:
    """One layer moved onto a checkpoint: what the logbook records."""

    layer: str
    checkpoint: str
    files_before: int  # files in the chain under the new layer before
    files_after: int

    def describe(self) -> str:
        return (
            f"layer {self.layer} now backs onto checkpoint {self.checkpoint}"
            f" (chain of {self.files_before} files -> {self.files_after})"
        )


def shown_layer(backing_name: str) -> str | None:
    """The layer whose content checkpoint ``backing_name`` (as a header names it) shows; None for other files.

    A checker that expects a layer to back onto its parent's layer accepts a checkpoint of it.
    """
    path = Path(backing_name)
    if path.parent.name != CHECKPOINT_DIR or not path.name.startswith(CHECKPOINT_PREFIX) or "-of-" not in path.name:
        return None
    return path.name.split("-of-", 1)[1]


def chain_files(top: Path) -> list[Path]:
    """``top`` and every file under it, top first, read from the qcow2 headers (no qemu-img)."""
    return qcow2_peek.backing_chain(top, limit=_WALK_LIMIT)


def bound_chain(
    layers_dir: Path, top: Path, root_format: str, *, limit: int | None = None
) -> Consolidation | None:
    """Make sure a new overlay on ``top`` has at most ``limit`` files in its chain; what was done, if anything.

    ``limit`` defaults to :data:`MAX_CHAIN_FILES`. ``top`` must be a layer no running VM holds
    (the live layer or a state's layer while the VM is stopped).
    """
    chain = chain_files(top)
    if len(chain) + 1 <= (limit or MAX_CHAIN_FILES) or len(chain) < 3:
        return None
    checkpoint = _checkpoint_of(layers_dir, chain, root_format)
    qemu_img.rebase_unsafe(top, checkpoint, "qcow2")  # same content: the checkpoint shows what chain[1] showed
    fsutil.fsync_file(top)
    if top.parent.resolve() == Path(layers_dir).resolve():
        disk_usage.forget_layers(Path(layers_dir).parent, [top.name])
    after = len(chain_files(top)) + 1
    return Consolidation(top.name, checkpoint.name, len(chain) + 1, after)


def running_checkpoint(
    layers_dir: Path, live: Path, root_format: str, *, limit: int | None = None
) -> tuple[Path, int] | None:
    """A checkpoint showing what a running VM's ``live`` layer backs onto, once its chain has reached the bound.

    QEMU holds ``live`` and reads the files under it, so nothing of that chain changes: the caller
    puts a new overlay on the checkpoint and has the hypervisor move the disk onto it (a shallow
    copy of ``live``'s own clusters, then a pivot). Returns the checkpoint and the files of the
    chain before, or None while the chain is within ``limit`` (default :data:`MAX_CHAIN_FILES`).
    """
    chain = chain_files(live)
    if len(chain) < (limit or MAX_CHAIN_FILES) or len(chain) < 3:
        return None
    return _checkpoint_of(layers_dir, chain, root_format), len(chain)


def _checkpoint_of(layers_dir: Path, chain: list[Path], root_format: str) -> Path:
    """A new checkpoint showing what ``chain[1]`` shows, on a short base (the files of ``chain`` stay as they are)."""
    checkpoint_dir = Path(layers_dir) / CHECKPOINT_DIR
    base, base_format = _checkpoint_base(chain, checkpoint_dir, root_format)
    under_source_format = root_format if len(chain) == 3 else "qcow2"  # chain[2] is the root only in a 3-file chain
    return _make_checkpoint(checkpoint_dir, chain[1], under_source_format, base, base_format)


def _checkpoint_base(chain: list[Path], checkpoint_dir: Path, root_format: str) -> tuple[Path, str]:
    """The nearest checkpoint under ``chain[1]`` if the stack may grow, else the root of the chain."""
    resolved_dir = checkpoint_dir.resolve()
    for position, path in enumerate(chain[2:], start=2):
        if path.resolve().parent == resolved_dir:
            stack = sum(1 for p in chain[position:] if p.resolve().parent == resolved_dir)
            if stack < MAX_CHECKPOINT_STACK:
                return path, "qcow2"
            break
    return chain[-1], root_format


def _make_checkpoint(
    checkpoint_dir: Path, source: Path, source_backing_format: str, base: Path, base_format: str
) -> Path:
    """A new checkpoint showing what ``source`` shows, backed by ``base``; complete once it has its final name."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    dest = checkpoint_dir / f"{CHECKPOINT_PREFIX}{secrets.token_hex(6)}-of-{source.name}"
    tmp = fsutil.temp_path_for(dest)
    try:
        shutil.copyfile(source, tmp)
        rel_source_backing = qcow2_peek.read_header(source).backing_name
        if rel_source_backing is not None and not os.path.isabs(rel_source_backing):
            # the copy lives elsewhere: name its current backing from its own directory first
            qemu_img.rebase_unsafe(tmp, source.parent / rel_source_backing, source_backing_format)
        rel = os.path.relpath(base.resolve(), checkpoint_dir.resolve())
        qemu_img.run(["rebase", "-q", "-f", "qcow2", "-b", rel, "-F", base_format, str(tmp)], cwd=checkpoint_dir)
        fsutil.fsync_file(tmp)
        fsutil.durable_rename(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def collect(layers_dir: Path) -> list[str]:
    """Delete the checkpoints no layer or other checkpoint backs onto any more; their names."""
    checkpoint_dir = Path(layers_dir) / CHECKPOINT_DIR
    if not checkpoint_dir.is_dir():
        return []
    holders = [p for p in Path(layers_dir).iterdir() if p.is_file() and p.suffix == ".qcow2"]
    candidates = {p.name: p for p in checkpoint_dir.iterdir() if p.is_file() and p.suffix == ".qcow2"}
    used: set[str] = set()
    pending = list(holders)
    while pending:
        path = pending.pop()
        try:
            backing = qcow2_peek.read_header(path).backing_name
        except (OSError, ValueError):
            continue
        if backing is None:
            continue
        target = (path.parent / backing).resolve()
        if target.parent == checkpoint_dir.resolve() and target.name not in used:
            used.add(target.name)
            pending.append(target)
    removed = []
    for name, path in candidates.items():
        if name not in used:
            path.unlink(missing_ok=True)
            removed.append(name)
    if removed:
        fsutil.fsync_dir(checkpoint_dir)
    return sorted(removed)
