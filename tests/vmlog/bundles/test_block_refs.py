"""Block lists (format 2): copies travel as references, and every tampered reference or record is refused.

A refused bundle leaves nothing in the import directory and never changes the base.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from bundle_fixtures import DISK_MEMBER, Chain, member, pack, read_members, reseal, write_bundle

from hypervisors import qemu_img
from vmlog.bundles import BaseImageRef, BundleReader, BundleRejected, BundleWriter, LocalReference
from vmlog.bundles.blocks import BASE, BLOCK_SIZE, COPY, MAGIC, BlockDecoder, BlockEncoder
from vmlog.bundles.nbd import NbdImage

BASE_BLOCKS = 8192  # the chain fixture's 32 MiB base


def _forge(valid: Path, out: Path, write: Callable[[BlockEncoder], None], *, raw: bytes | None = None) -> Path:
    """``valid`` with its block list replaced by what ``write`` encodes (or ``raw``), every digest matching."""
    members = read_members(valid)
    members.pop("manifest.sig", None)
    manifest = json.loads(members["manifest.json"])
    if raw is None:
        parts: list[bytes] = []
        encoder = BlockEncoder(parts.append, manifest["disks"][0]["virtual_size"])
        write(encoder)
        encoder.close()
        raw = b"".join(parts)
    members[DISK_MEMBER] = zstandard.ZstdCompressor().compress(raw)
    mbytes = reseal(manifest, members, {DISK_MEMBER: raw})
    return pack(
        out,
        [member("manifest.json", mbytes), member("logbook.json", members["logbook.json"]),
         member(DISK_MEMBER, members[DISK_MEMBER])],
    )


def _base_sha(chain: Chain, block: int, count: int = 1) -> bytes:
    with open(chain.base, "rb") as fh:
        fh.seek(block * BLOCK_SIZE)
        return hashlib.sha256(fh.read(count * BLOCK_SIZE)).digest()


def _data(encoder: BlockEncoder, first: int, byte: int, count: int = 1) -> None:
    encoder.data(first, bytes([byte]) * (count * BLOCK_SIZE))


HEADER = MAGIC + BLOCK_SIZE.to_bytes(4, "big") + (32 << 20).to_bytes(8, "big")
RECORD_END_0 = bytes([0]) + bytes(8) + bytes(4)

TAMPERED: dict[str, tuple[str, Callable[[Chain], Callable[[BlockEncoder], None]] | bytes]] = {
    "base-ref-wrong-digest": ("reference", lambda c: lambda e: e.reference(BASE, 10, 1, 300, _base_sha(c, 600))),
    "base-ref-outside-base": ("reference", lambda c: lambda e: e.reference(BASE, 10, 2, BASE_BLOCKS - 1, b"\0" * 32)),
    "base-ref-far-outside": ("reference", lambda c: lambda e: e.reference(BASE, 10, 1, 1 << 60, b"\0" * 32)),
    "copy-ref-not-written": ("reference", lambda c: lambda e: e.reference(COPY, 10, 1, 5, _base_sha(c, 5))),
    "copy-ref-forward": (
        "reference",
        lambda c: lambda e: (e.reference(COPY, 10, 1, 11, hashlib.sha256(b"\x07" * 4096).digest()), _data(e, 11, 7)),
    ),
    "copy-ref-wrong-digest": (
        "reference",
        lambda c: lambda e: (_data(e, 3, 9), e.reference(COPY, 10, 1, 3, hashlib.sha256(b"\x08" * 4096).digest())),
    ),
    "copy-ref-partly-written": (
        "reference",
        lambda c: lambda e: (_data(e, 3, 9), e.reference(COPY, 10, 2, 3, hashlib.sha256(b"\x09" * 8192).digest())),
    ),
    "overlapping-records": ("blocks", lambda c: lambda e: (_data(e, 3, 9, 2), _data(e, 4, 9))),
    "out-of-order": ("blocks", lambda c: lambda e: (_data(e, 30, 9), _data(e, 4, 9))),
    "beyond-the-disk": ("blocks", lambda c: lambda e: _data(e, BASE_BLOCKS - 1, 9, 2)),
    "huge-run": ("blocks", lambda c: lambda e: e.zero(0, 5000)),
    "empty-run": ("blocks", lambda c: lambda e: e.zero(0, 0)),
    "unknown-kind": ("blocks", HEADER + bytes([9]) + bytes(12) + bytes([0]) + bytes(8) + (1).to_bytes(4, "big")),
    "wrong-magic": ("blocks", b"VMLBLKS9" + HEADER[8:] + RECORD_END_0),
    "wrong-disk-size": ("blocks", MAGIC + BLOCK_SIZE.to_bytes(4, "big") + (64 << 20).to_bytes(8, "big") + RECORD_END_0),
    "wrong-record-count": ("blocks", HEADER + bytes([0]) + bytes(8) + (3).to_bytes(4, "big")),
    "data-after-end": ("blocks", HEADER + RECORD_END_0 + b"x"),
    "no-end-record": ("truncated", HEADER + bytes([2]) + (1).to_bytes(8, "big") + (1).to_bytes(4, "big")),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_block_list_is_refused_with_nothing_written(case: str, chain: Chain, tmp_path: Path) -> None:
    reason, forge = TAMPERED[case]
    valid = write_bundle(chain, tmp_path / "valid.vmlstate")
    if isinstance(forge, bytes):
        bundle = _forge(valid, tmp_path / "bad.vmlstate", lambda e: None, raw=forge)
    else:
        bundle = _forge(valid, tmp_path / "bad.vmlstate", forge(chain))
    root = tmp_path / "import"
    root.mkdir()
    base_before = chain.base.read_bytes()
    BundleReader(bundle).verify()  # structure and digests are fine: only the content is hostile
    with pytest.raises(BundleRejected) as info:
        BundleReader(bundle).materialise(root / "st", base=LocalReference(chain.base, "raw"))
    assert info.value.reason == reason, str(info.value)
    assert list(root.iterdir()) == []
    assert chain.base.read_bytes() == base_before


def test_hand_made_references_import(chain: Chain, tmp_path: Path) -> None:
    """The positive side of the corpus above: correct BASE and COPY references rebuild the bytes."""
    valid = write_bundle(chain, tmp_path / "valid.vmlstate")

    def write(e: BlockEncoder) -> None:
        _data(e, 3, 9, 2)
        e.reference(BASE, 10, 4, 300, _base_sha(chain, 300, 4))
        e.reference(COPY, 20, 2, 3, hashlib.sha256(b"\x09" * 8192).digest())

    bundle = _forge(valid, tmp_path / "ok.vmlstate", write)
    result = BundleReader(bundle).materialise(tmp_path / "st", base=LocalReference(chain.base, "raw"))
    with NbdImage(result.disks["system"], "qcow2") as img:
        assert img.read(3 * BLOCK_SIZE, 2 * BLOCK_SIZE) == b"\x09" * 8192
        assert img.read(20 * BLOCK_SIZE, 2 * BLOCK_SIZE) == b"\x09" * 8192
        with open(chain.base, "rb") as fh:
            fh.seek(300 * BLOCK_SIZE)
            assert img.read(10 * BLOCK_SIZE, 4 * BLOCK_SIZE) == fh.read(4 * BLOCK_SIZE)
            fh.seek(5 * BLOCK_SIZE)
            assert img.read(5 * BLOCK_SIZE, BLOCK_SIZE) == fh.read(BLOCK_SIZE)


def test_copied_and_repeated_blocks_travel_as_references(tmp_path: Path) -> None:
    """A file copied from the base and a block written twice cost a reference each, not their bytes."""
    rng = random.Random(3)
    base = tmp_path / "base.raw"
    base.write_bytes(rng.randbytes(16 << 20))
    top = qemu_img.create_overlay(tmp_path / "top.qcow2", base, "raw")
    copied = base.read_bytes()[1 << 20 : 3 << 20]
    fresh = rng.randbytes(256 << 10)
    with NbdImage(top, "qcow2", writable=True) as img:
        img.write((8 << 20) + 4096, copied)  # not aligned like the source
        img.write(12 << 20, fresh)
        img.write((13 << 20) + 8192, fresh)
        img.flush()
    sha = hashlib.sha256(base.read_bytes()).hexdigest()
    writer = BundleWriter(BaseImageRef(base, "raw", sha, "b", "1", base.stat().st_size), state={"id": "s"},
                          vm_spec={}, block_index_dir=tmp_path / "index")
    writer.add_disk("system", top)
    summary = writer.write(tmp_path / "s.vmlstate")
    stats = summary.disks["system"]
    assert (stats.data_bytes, stats.base_ref_bytes, stats.copy_ref_bytes) == (256 << 10, 2 << 20, 256 << 10)
    assert summary.size < 300 << 10
    assert list((tmp_path / "index").iterdir())  # the base's index is kept for the next export
    kinds: list[int] = []
    decoder = BlockDecoder(lambda record: kinds.append(record.kind), virtual_size=16 << 20)
    decoder.feed(zstandard.ZstdDecompressor().decompressobj().decompress(read_members(summary.path)[DISK_MEMBER]))
    decoder.finish()
    assert kinds.count(BASE) == 1  # the copied file is one run, confirmed a cluster at a time
    result = BundleReader(summary.path).materialise(tmp_path / "recv", base=LocalReference(base, "raw"))
    assert qemu_img.compare(result.disks["system"], "qcow2", top, "qcow2")


def test_written_block_map_marks_and_checks_runs_like_one_bit_at_a_time() -> None:
    """The map of written blocks (what a COPY may point at) sets whole bytes at once; it must agree with bit by bit."""
    from vmlog.bundles.block_apply import BlockApplier

    rng = random.Random(5)
    applier = object.__new__(BlockApplier)
    applier._written = bytearray(64)
    naive = set()
    for _ in range(300):
        first, count = rng.randrange(500), rng.randrange(1, 20)
        if rng.random() < 0.5:
            applier._mark(first, count)
            naive.update(range(first, first + count))
        assert applier._all_written(first, count) == all(n in naive for n in range(first, first + count))
    assert {n for n in range(512) if applier._written[n >> 3] & (1 << (n & 7))} == naive
