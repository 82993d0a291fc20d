"""Builds a disk's delta layer: a small-cluster qcow2 holding only clusters that differ from a reference.

The reference is the base image (full bundle) or the ``since`` layer (incremental bundle). Only
extents that ``qemu-img map`` reports as allocated above the reference are visited, so the work
grows with the change, not with the disk; each such cluster is then compared by content with the
reference's bytes at the same offset, because guests rewriting files with identical content (or
a flattened chain) reallocate clusters that equal the base. Clusters that differ are copied into
a fresh overlay (all-zero ones become qcow2 zero clusters), and the overlay's backing name is set
to a placeholder the importer re-points at its own verified copy of the reference.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypervisors import qemu_img
from vmlog.bundles.errors import BundleRejected
from vmlog.bundles.nbd import NbdImage
from vmlog.bundles.qcow2_header import read_header
from vmlog.errors import InvalidInput

DELTA_CLUSTER_SIZE = 65536
COMPARE_CHUNK = 4 << 20
REFERENCE_PLACEHOLDER = "vmlstate-reference"


@dataclass(frozen=True)
class DeltaStats:
    """What a delta holds: bytes of changed data, bytes turned to zero, bytes visited to find them."""

    virtual_size: int
    data_bytes: int
    zero_bytes: int
    scanned_bytes: int


def _chain(top: Path, fmt: str) -> list[Path]:
    """The files of ``top``'s backing chain, top first (trusted, vmlog-made images only)."""
    return [Path(e["filename"]).resolve() for e in chain_info(top, fmt)]


_PEEK_DEPTH = 4096  # longer chains are left to qemu-img


def _peek_chain(top: Path, fmt: str) -> list[dict[str, Any]] | None:
    """The chain read from the qcow2 headers in Python, or None where it takes qemu-img to say.

    Why: ``qemu-img info --backing-chain`` is a process start-up and opens every layer (0.6 s at
    300 layers). vmlog's own chains are qcow2 layers with a relative or absolute backing name and an
    explicit backing format, over a raw or qcow2 root; anything else goes to qemu-img.
    """
    entries: list[dict[str, Any]] = []
    path, form = Path(top), fmt
    while len(entries) < _PEEK_DEPTH:
        if form == "raw":
            return [*entries, {"filename": str(path), "format": "raw", "virtual-size": path.stat().st_size}]
        if form != "qcow2":
            return None
        try:
            header = read_header(path, str(path))
        except (BundleRejected, OSError):
            return None
        entries.append({"filename": str(path), "format": "qcow2", "virtual-size": header.virtual_size})
        if header.backing_name is None:
            return entries
        if header.backing_format is None or ":" in header.backing_name:
            return None
        path, form = path.parent / header.backing_name, header.backing_format
    return None


def chain_info(top: Path, fmt: str) -> list[dict[str, Any]]:
    """``filename``, ``format`` and ``virtual-size`` of every file of ``top``'s backing chain, top first.

    Trusted, vmlog-made images only.
    """
    peeked = _peek_chain(top, fmt)
    if peeked is not None:
        return peeked
    entries = json.loads(qemu_img.run(["info", "--backing-chain", "--output=json", "-f", fmt, str(top)]))
    return [entries] if isinstance(entries, dict) else entries


def map_extents(top: Path, fmt: str) -> list[dict[str, Any]]:
    """``qemu-img map`` of ``top``: its extents with the chain depth each is allocated at."""
    return json.loads(qemu_img.run(["map", "--output=json", "-f", fmt, str(top)]))


def _candidate_ranges(top: Path, fmt: str, ref_depth: int | None, size: int) -> list[tuple[int, int]]:
    """Cluster-aligned, merged ranges allocated above the reference (everything if unrelated)."""
    if ref_depth is None:
        return [(0, size)] if size else []
    return ranges_above(map_extents(top, fmt), ref_depth, size)


def ranges_above(extents: list[dict[str, Any]], ref_depth: int, size: int) -> list[tuple[int, int]]:
    """Cluster-aligned, merged ranges of ``extents`` allocated above chain depth ``ref_depth``."""
    ranges: list[tuple[int, int]] = []
    cs = DELTA_CLUSTER_SIZE
    for ext in extents:
        if ext["depth"] >= ref_depth or not ext.get("present", True):
            continue
        start = ext["start"] // cs * cs
        end = min(size, -(-(ext["start"] + ext["length"]) // cs) * cs)
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))
    return ranges


def write_delta(
    top: Path,
    top_format: str,
    reference: Path,
    reference_format: str,
    out: Path,
    *,
    placeholder: str = REFERENCE_PLACEHOLDER,
) -> DeltaStats:
    """Write ``out``: what ``top`` shows the guest that ``reference`` does not, as a qcow2 overlay."""
    top = Path(top).resolve()
    reference = Path(reference).resolve()
    top_size = qemu_img.info(top, top_format)["virtual-size"]
    ref_size = qemu_img.info(reference, reference_format)["virtual-size"]
    if top_size != ref_size:
        raise InvalidInput(
            f"disk {top.name} is {top_size} bytes but its reference {reference.name} is {ref_size} bytes",
            fix="export disks that keep the base image's size",
        )
    chain = _chain(top, top_format)
    ref_depth = chain.index(reference) if reference in chain else None
    if ref_depth == 0:
        ranges: list[tuple[int, int]] = []
    else:
        ranges = _candidate_ranges(top, top_format, ref_depth, top_size)

    _create_overlay(out, reference, reference_format, top_size)
    with (
        NbdImage(top, top_format) as src,
        NbdImage(reference, reference_format) as ref,
        NbdImage(out, "qcow2", writable=True) as dst,
    ):
        data_bytes, zero_bytes, scanned = _copy_changed_clusters(src, ref, dst, ranges)
        dst.flush()
    qemu_img.run(["rebase", "-q", "-u", "-f", "qcow2", "-b", placeholder, "-F", reference_format, str(out)])
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return DeltaStats(top_size, data_bytes, zero_bytes, scanned)


def _create_overlay(out: Path, reference: Path, reference_format: str, size: int) -> None:
    """An empty small-cluster qcow2 over ``reference``: the delta starts out showing the reference."""
    qemu_img.run(
        [
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            f"cluster_size={DELTA_CLUSTER_SIZE}",
            "-b",
            str(reference),
            "-F",
            reference_format,
            str(out),
            str(size),
        ]
    )


def _copy_changed_clusters(
    src: NbdImage, ref: NbdImage, dst: NbdImage, ranges: list[tuple[int, int]]
) -> tuple[int, int, int]:
    """Copy the clusters of ``ranges`` whose content differs from ``ref`` into ``dst``, runs at a time.

    Returns (data bytes written, bytes turned to zero clusters, bytes compared).
    """
    data_bytes = zero_bytes = scanned = 0
    cs = DELTA_CLUSTER_SIZE
    zero_cluster = bytes(cs)
    for start, end in ranges:
        for off in range(start, end, COMPARE_CHUNK):
            n = min(COMPARE_CHUNK, end - off)
            scanned += n
            new = src.read(off, n)
            old = ref.read(off, n)
            if new == old:
                continue
            run_kind: str | None = None
            run_start = 0
            for pos in range(0, n + cs, cs):
                kind: str | None = None
                if pos < n:
                    a = new[pos : pos + cs]
                    if a != old[pos : pos + cs]:
                        kind = "zero" if a == zero_cluster[: len(a)] else "data"
                if kind != run_kind:
                    stop = min(pos, n)
                    if run_kind == "data":
                        dst.write(off + run_start, memoryview(new)[run_start:stop])
                        data_bytes += stop - run_start
                    elif run_kind == "zero":
                        dst.write_zeroes(off + run_start, stop - run_start)
                        zero_bytes += stop - run_start
                    run_kind, run_start = kind, pos
    return data_bytes, zero_bytes, scanned
