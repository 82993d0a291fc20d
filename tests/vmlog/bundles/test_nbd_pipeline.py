"""The NBD client's requests in flight: thousands of small writes and reads neither block nor reorder the image."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from hypervisors import qemu_img
from vmlog.bundles.nbd import NbdImage


@pytest.mark.timeout(120)
def test_thousands_of_small_writes_behind_and_pipelined_reads_give_the_same_bytes(tmp_path: Path) -> None:
    image = qemu_img.create(tmp_path / "disk.qcow2", "qcow2", 64 << 20)
    rng = random.Random(7)
    blocks = sorted(rng.sample(range((64 << 20) // 4096), 3000))
    data = {b: os.urandom(4096) for b in blocks}
    with NbdImage(image, "qcow2", writable=True) as img:
        for b in blocks:
            img.write_behind(b * 4096, data[b])
        img.flush()
    with NbdImage(image, "qcow2") as img:
        got = dict(img.read_many([(b * 4096, 4096) for b in blocks]))
        assert img.read(blocks[0] * 4096, 4096) == data[blocks[0]]
    assert got == {b * 4096: data[b] for b in blocks}
