"""The ``since`` digest of incremental bundles: a digest of what a disk chain shows above the base image.

Sender and recipient must agree that the state an incremental bundle builds on holds the same
bytes on both sides, although their layer files differ (the sender's chain has many layers, the
recipient's is one imported delta). So the digest is taken over guest-visible content, not over
files: every 64 KiB cluster whose bytes differ from the base, as (offset, bytes), in offset order,
after the base's sha256 and the virtual size. Like the delta itself, only extents allocated above
the base are read, so the cost grows with the change, not with the disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypervisors import qemu_img
from vmlog.bundles.delta import COMPARE_CHUNK, DELTA_CLUSTER_SIZE, _candidate_ranges, _chain
from vmlog.bundles.nbd import NbdImage
from vmlog.errors import InvalidInput

DIGEST_PREFIX = "content-sha256:"


def content_digest(top: Path, top_format: str, base: Path, base_format: str, base_sha256: str) -> str:
    """``content-sha256:<hex>`` of what ``top`` shows the guest that ``base`` does not."""
    top = Path(top).resolve()
    base = Path(base).resolve()
    size = qemu_img.info(top, top_format)["virtual-size"]
    if qemu_img.info(base, base_format)["virtual-size"] != size:
        raise InvalidInput(
            f"disk {top.name} and its base differ in size", fix="export disks that keep the base's size"
        )
    chain = _chain(top, top_format)
    depth = chain.index(base) if base in chain else None
    ranges = [] if depth == 0 else _candidate_ranges(top, top_format, depth, size)
    sha = hashlib.sha256()
    sha.update(f"vmlstate-content-v1 {base_sha256} {size}\n".encode())
    cs = DELTA_CLUSTER_SIZE
    with NbdImage(top, top_format) as src, NbdImage(base, base_format) as ref:
        for start, end in ranges:
            for off in range(start, end, COMPARE_CHUNK):
                n = min(COMPARE_CHUNK, end - off)
                new = src.read(off, n)
                old = ref.read(off, n)
                if new == old:
                    continue
                for pos in range(0, n, cs):
                    cluster = new[pos : pos + cs]
                    if cluster != old[pos : pos + cs]:
                        sha.update((off + pos).to_bytes(8, "big"))
                        sha.update(cluster)
    return DIGEST_PREFIX + sha.hexdigest()
