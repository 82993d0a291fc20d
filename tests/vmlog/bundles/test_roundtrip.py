"""Export a qcow2 chain to a .vmlstate and rebuild it elsewhere: the guest sees the same bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bundle_fixtures import DISK_MEMBER, MIB, Chain, qemu_io, read_members, write_bundle

from hypervisors import qemu_img
from vmlog.bundles import BaseImageRef, BundleReader, BundleWriter, LocalReference, SinceRef
from vmlog.bundles.blocks import MAGIC


def _sent(stats) -> int:  # noqa: ANN001
    """Non-zero bytes that differ from the reference, whether sent as data or as references."""
    return stats.data_bytes + stats.base_ref_bytes + stats.copy_ref_bytes


def _receiver_base(chain: Chain, tmp_path: Path) -> Path:
    """The recipient's own copy of the base, in another directory tree."""
    d = tmp_path / "receiver" / "images"
    d.mkdir(parents=True)
    return Path(shutil.copy(chain.base, d / "base.raw"))


def test_round_trip_rebuilds_identical_disk(chain: Chain, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "state.vmlstate")
    base = _receiver_base(chain, tmp_path)
    result = BundleReader(bundle).materialise(
        tmp_path / "receiver" / "projects" / "p1" / "st-1", base=LocalReference(base, "raw")
    )
    rebuilt = result.disks["system"]
    assert qemu_img.compare(rebuilt, "qcow2", chain.layer2, "qcow2")
    info = qemu_img.info(rebuilt, "qcow2")
    assert info["backing-filename"] == "../../../images/base.raw"
    assert info["cluster-size"] <= 65536
    assert result.bundle.state["name"] == "after calibration"
    assert result.bundle.logbook == [{"state": "st-1", "text": "calibrated"}]
    assert result.memory is None


def test_delta_holds_only_clusters_that_differ_from_the_base(chain: Chain, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "state.vmlstate")
    manifest = json.loads(read_members(bundle)["manifest.json"])
    disk = manifest["disks"][0]
    # 256k + 64k + 1536k changed; the 1 MiB rewrite with the base's bytes and the 64k write of
    # 0x01 at offset 0 (the base's own byte there) are dropped by the content check.
    assert disk["changed_bytes"] + disk["referenced_bytes"] == 256 * 1024 + 64 * 1024 + 1536 * 1024
    # each write repeats one byte: all but its first 4 KiB block are copies of it
    assert disk["changed_bytes"] == 3 * 4096
    assert disk["encoding"] == "blocks"
    assert disk["zeroed_bytes"] == 128 * 1024
    assert disk["backing_format"] == "raw"
    assert manifest["base"]["sha256"] == chain.base_sha256
    assert manifest["base"]["urls"] == ["http://127.0.0.1:9/base.raw"]


def test_identical_rewrite_of_whole_disk_gives_tiny_bundle(chain: Chain, tmp_path: Path) -> None:
    """A guest rewriting every file with the same content reallocates every cluster; none travels."""
    top = qemu_img.create_overlay(chain.dir / "rewrite.qcow2", chain.base, "raw")
    commands = [f"write -P {i + 1} {i}M 1M" for i in range(32)]
    qemu_io(top, *commands)
    writer = BundleWriter(chain.base_ref(), state={"id": "s"}, vm_spec={})
    writer.add_disk("system", top)
    summary = writer.write(tmp_path / "rewrite.vmlstate")
    assert summary.disks["system"].data_bytes == 0
    assert summary.disks["system"].scanned_bytes == 32 * MIB
    assert summary.size < 64 * 1024


def test_flattened_disk_exports_only_the_change(chain: Chain, tmp_path: Path) -> None:
    flat = chain.dir / "flat.qcow2"
    qemu_img.convert(chain.layer2, flat, src_format="qcow2", dest_format="qcow2")
    writer = BundleWriter(chain.base_ref(), state={"id": "s"}, vm_spec={})
    writer.add_disk("system", flat)
    summary = writer.write(tmp_path / "flat.vmlstate")
    assert _sent(summary.disks["system"]) == (256 + 64 + 1536) * 1024
    base = _receiver_base(chain, tmp_path)
    result = BundleReader(summary.path).materialise(tmp_path / "receiver" / "st", base=LocalReference(base, "raw"))
    assert qemu_img.compare(result.disks["system"], "qcow2", chain.layer2, "qcow2")


def test_incremental_bundle_on_since_state(chain: Chain, tmp_path: Path) -> None:
    receiver = tmp_path / "receiver"
    base = _receiver_base(chain, tmp_path)
    # the recipient first imports layer1 as a full bundle
    w1 = BundleWriter(chain.base_ref(), state={"id": "st-1"}, vm_spec={})
    w1.add_disk("system", chain.layer1)
    full = w1.write(tmp_path / "full.vmlstate").path
    first = BundleReader(full).materialise(receiver / "st-1", base=LocalReference(base, "raw"))

    since = SinceRef("st-1", "digest-of-st-1", {"system": chain.layer1})
    w2 = BundleWriter(chain.base_ref(), state={"id": "st-2"}, vm_spec={}, since=since)
    w2.add_disk("system", chain.layer2)
    summary = w2.write(tmp_path / "incr.vmlstate")
    assert _sent(summary.disks["system"]) == (64 + 1536) * 1024  # 0x01 at 0 equals layer1

    reader = BundleReader(summary.path)
    assert reader.verify().since == {"state_id": "st-1", "digest": "digest-of-st-1"}
    second = reader.materialise(
        receiver / "st-2",
        base=LocalReference(base, "raw"),
        since_layers=first.disks,
        since_id="st-1",
        since_digest="digest-of-st-1",
    )
    assert qemu_img.info(second.disks["system"], "qcow2")["backing-filename"] == "../st-1/system.qcow2"
    assert qemu_img.compare(second.disks["system"], "qcow2", chain.layer2, "qcow2")


def test_memory_image_travels_only_when_given(chain: Chain, tmp_path: Path) -> None:
    memory = tmp_path / "mem.img"
    memory.write_bytes(b"QEVM" + bytes(range(256)) * 4096)
    bundle = write_bundle(chain, tmp_path / "m.vmlstate", memory=memory, memory_info={"hypervisor": "qemu"})
    base = _receiver_base(chain, tmp_path)
    result = BundleReader(bundle).materialise(tmp_path / "receiver" / "st", base=LocalReference(base, "raw"))
    assert result.memory is not None
    assert result.memory.read_bytes() == memory.read_bytes()
    assert "memory-image" in result.bundle.manifest["features_required"]


def test_exported_delta_is_a_block_list_without_sender_paths(chain: Chain, tmp_path: Path) -> None:
    import zstandard

    bundle = write_bundle(chain, tmp_path / "s.vmlstate")
    raw = zstandard.ZstdDecompressor().decompress(read_members(bundle)[DISK_MEMBER], max_output_size=64 << 20)
    assert raw.startswith(MAGIC)
    assert str(chain.dir) not in raw.decode("latin-1")  # no sender paths leak
    subprocess.run(["tar", "tf", str(bundle)], check=True, capture_output=True)


def test_base_ref_metadata_is_in_manifest(chain: Chain, tmp_path: Path) -> None:
    ref = BaseImageRef(chain.base, "raw", chain.base_sha256, "cernvm", "5.1", 123, ("https://a", "https://b"))
    writer = BundleWriter(ref, state={"id": "x"}, vm_spec={"name": "vm"})
    writer.add_disk("system", chain.layer2)
    bundle = writer.write(tmp_path / "b.vmlstate").path
    base = json.loads(read_members(bundle)["manifest.json"])["base"]
    assert (base["name"], base["version"], base["size"], base["urls"]) == (
        "cernvm",
        "5.1",
        123,
        ["https://a", "https://b"],
    )
