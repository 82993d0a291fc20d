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
from contextlib import ExitStack
from pathlib import Path

from hypervisors import qemu_img
from vmlog.bundles.delta import COMPARE_CHUNK, DELTA_CLUSTER_SIZE, _candidate_ranges, chain_info
from vmlog.bundles.image_read import open_image
from vmlog.bundles.nbd import NbdImage
from vmlog.errors import InvalidInput

DIGEST_PREFIX = "content-sha256:"


def content_digest(top: Path, top_format: str, base: Path, base_format: str, base_sha256: str) -> str:
    """``content-sha256:<hex>`` of what ``top`` shows the guest that ``base`` does not."""
    top = Path(top).resolve()
    base = Path(base).resolve()
    chain = chain_info(top, top_format)
    files = [Path(e["filename"]).resolve() for e in chain]
    depth = files.index(base) if base in files else None
    size = chain[0]["virtual-size"]
    base_size = chain[depth]["virtual-size"] if depth is not None else qemu_img.info(base, base_format)["virtual-size"]
    if base_size != size:
        raise InvalidInput(
            f"disk {top.name} and its base differ in size", fix="export disks that keep the base's size"
        )
    ranges = [] if depth == 0 else _candidate_ranges(top, top_format, depth, size)
    pieces = [(off, min(COMPARE_CHUNK, end - off)) for start, end in ranges for off in range(start, end, COMPARE_CHUNK)]
    sha = hashlib.sha256()
    sha.update(f"vmlstate-content-v1 {base_sha256} {size}\n".encode())
    cs = DELTA_CLUSTER_SIZE
    with ExitStack() as stack:
        src = stack.enter_context(NbdImage(top, top_format))
        ref = open_image(stack, base, base_format)
        for (off, new), (_off, old) in zip(src.read_many(pieces), ref.read_many(pieces), strict=True):
            if new == old:
                continue
            for pos in range(0, len(new), cs):
                cluster = new[pos : pos + cs]
                if cluster != old[pos : pos + cs]:
                    sha.update((off + pos).to_bytes(8, "big"))
                    sha.update(cluster)
    return DIGEST_PREFIX + sha.hexdigest()
