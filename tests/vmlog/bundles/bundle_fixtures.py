"""Fixtures for bundle tests: a raw base with known bytes, a two-layer qcow2 chain, forging helpers."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from hypervisors import qemu_img
from vmlog.bundles import BaseImageRef, BundleWriter, SigningKey

MIB = 1 << 20
BASE_SIZE = 32 * MIB
DISK_MEMBER = "disk-system.blocks.zst"  # what the writer makes (format 2)
QCOW2_MEMBER = "disk-system.qcow2.zst"  # what format 1 bundles carry


def qemu_io(image: Path, *commands: str) -> None:
    args = ["qemu-io", "-f", "qcow2"]
    for c in commands:
        args += ["-c", c]
    subprocess.run([*args, str(image)], check=True, capture_output=True)


def base_byte(offset: int) -> int:
    """The byte the base image holds at ``offset``: MiB number + 1."""
    return offset // MIB + 1


@dataclass
class Chain:
    dir: Path
    base: Path
    base_sha256: str
    layer1: Path
    layer2: Path

    def base_ref(self) -> BaseImageRef:
        return BaseImageRef(
            self.base,
            "raw",
            self.base_sha256,
            "testbase",
            "1.0",
            self.base.stat().st_size,
            ("http://127.0.0.1:9/base.raw",),
        )


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    """base.raw (MiB i holds byte i+1) <- layer1 <- layer2, with changes, zeroes and same-as-base writes."""
    d = tmp_path / "sender"
    d.mkdir()
    base = d / "base.raw"
    with open(base, "wb") as fh:
        for i in range(BASE_SIZE // MIB):
            fh.write(bytes([i + 1]) * MIB)
    l1 = qemu_img.create_overlay(d / "layer1.qcow2", base, "raw")
    qemu_io(
        l1,
        "write -P 0xab 1M 256k",  # changed
        "write -P 0x06 5M 1M",  # same bytes as the base: must not travel
        "write -z 10M 128k",  # zeroed over non-zero base
    )
    l2 = qemu_img.create_overlay(d / "layer2.qcow2", l1, "qcow2")
    qemu_io(l2, "write -P 0xcd 20M 64k", "write -P 0x01 0 64k", "write -P 0x21 30M 1536k")
    sha = hashlib.sha256(base.read_bytes()).hexdigest()
    return Chain(d, base, sha, l1, l2)


@pytest.fixture
def signing_key(tmp_path: Path) -> SigningKey:
    return SigningKey.load_or_create(tmp_path / "alice-config", "Alice <alice@example.org>")


def write_bundle(chain: Chain, out: Path, **kwargs) -> Path:
    writer = BundleWriter(
        chain.base_ref(),
        state={"id": "st-1", "name": "after calibration", "author": "alice"},
        vm_spec={"name": "analysis", "memory_mib": 256},
        logbook=[{"state": "st-1", "text": "calibrated"}],
        **kwargs,
    )
    writer.add_disk("system", chain.layer2)
    writer.write(out)
    return out


# -- forging hostile bundles ---------------------------------------------------------------------------


def read_members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


Member = tuple[tarfile.TarInfo, bytes]


def member(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, link: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.linkname = link
    return info, data


def pack(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def reseal(manifest: dict, members: dict[str, bytes], raw: dict[str, bytes] | None = None) -> bytes:
    """Recompute the manifest's digests for ``members`` (stored bytes) and ``raw`` (decompressed)."""
    for name, data in members.items():
        if name in manifest["members"]:
            entry = manifest["members"][name]
            entry["stored_size"] = len(data)
            entry["stored_sha256"] = hashlib.sha256(data).hexdigest()
            if raw and name in raw:
                entry["raw_size"] = len(raw[name])
                entry["raw_sha256"] = hashlib.sha256(raw[name]).hexdigest()
    return json.dumps(manifest).encode()


def as_format_1(manifest: dict, members: dict[str, bytes]) -> None:
    """Turn a format 2 manifest (block-list disk) into format 1 (qcow2 disk), for forging qcow2 deltas."""
    manifest["format_version"] = 1
    manifest["features_required"] = [
        "qcow2-delta" if f == "block-list" else f for f in manifest["features_required"]
    ]
    for disk in manifest["disks"]:
        disk.pop("encoding", None)
        disk["member"] = QCOW2_MEMBER
    manifest["members"][QCOW2_MEMBER] = manifest["members"].pop(DISK_MEMBER)
    members.pop(DISK_MEMBER, None)


def forge_with_disk(valid: Path, out: Path, qcow2_bytes: bytes) -> Path:
    """A format 1 bundle like ``valid`` whose disk delta is ``qcow2_bytes``, with every digest made to match."""
    members = read_members(valid)
    manifest = json.loads(members["manifest.json"])
    as_format_1(manifest, members)
    name = QCOW2_MEMBER
    members[name] = zstandard.ZstdCompressor().compress(qcow2_bytes)
    mbytes = reseal(manifest, members, {name: qcow2_bytes})
    return pack(
        out,
        [member("manifest.json", mbytes), member("logbook.json", members["logbook.json"]), member(name, members[name])],
    )
