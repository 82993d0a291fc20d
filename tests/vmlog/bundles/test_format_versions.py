"""Bundles of format version 1 (qcow2 deltas, made before block lists) still import byte for byte."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from vmlog.bundles import BundleReader, LocalReference

FIXTURE = Path(__file__).parents[2] / "fixtures" / "bundles" / "v1-state.vmlstate"
MIB = 1 << 20


def test_version_1_bundle_still_imports(tmp_path: Path) -> None:
    base = tmp_path / "images" / "base.raw"
    base.parent.mkdir()
    base.write_bytes(b"".join(bytes([i + 1]) * MIB for i in range(4)))  # as NOTES.md describes
    reader = BundleReader(FIXTURE)
    bundle = reader.verify()
    assert bundle.manifest["format_version"] == 1
    assert bundle.base["sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    result = reader.materialise(tmp_path / "st", base=LocalReference(base, "raw"))
    flat = tmp_path / "flat.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(result.disks["system"]), str(flat)], check=True
    )
    expected = bytearray(base.read_bytes())
    expected[65536 : 65536 + 4096] = b"\xaa" * 4096
    expected[MIB : MIB + 131072] = b"\xbb" * 131072
    expected[2 * MIB : 2 * MIB + 65536] = bytes(65536)
    assert flat.read_bytes() == bytes(expected)
    assert result.bundle.state["name"] == "v1 state"
