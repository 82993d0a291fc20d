"""Members written in place: the bundle is one ordinary tar, made without a second compressed copy or a partial file."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from bundle_fixtures import DISK_MEMBER, Chain, write_bundle

from vmlog.bundles import BundleReader, BundleWriter, LocalReference, SigningKey
from vmlog.bundles.manifest import parse
from vmlog.bundles.tar_layout import IN_PLACE_HEADER, InPlaceTar

ORDER = ["manifest.json", "manifest.sig", "logbook.json", "checks.json", DISK_MEMBER, "memory.zst"]


def _full_bundle(chain: Chain, out: Path, key: SigningKey) -> Path:
    memory = chain.dir / "memory.img"
    memory.write_bytes(b"guest memory " * 100_000)
    return write_bundle(chain, out, signing_key=key, checks=b'{"checks": []}\n', memory=memory,
                        memory_info={"hypervisor": "kvm"})


def test_bundle_is_a_plain_tar_with_the_manifest_first(chain: Chain, signing_key: SigningKey, tmp_path: Path) -> None:
    bundle = _full_bundle(chain, tmp_path / "state.vmlstate", signing_key)
    with tarfile.open(bundle, "r:") as tf:
        members = tf.getmembers()
        data = {m.name: tf.extractfile(m).read() for m in members}
    assert [m.name for m in members] == ORDER
    assert all(m.isreg() for m in members)
    manifest = parse(data["manifest.json"])  # padded with spaces to its room: still the same JSON
    assert json.loads(data["manifest.json"]) == manifest and len(data["manifest.json"]) % 512 == 0
    for name, entry in manifest["members"].items():
        assert entry["stored_size"] == len(data[name])
        assert entry["stored_sha256"] == hashlib.sha256(data[name]).hexdigest()
    assert bundle.stat().st_size % 10240 == 0
    if shutil.which("tar"):
        listing = subprocess.run(["tar", "tvf", str(bundle)], check=True, capture_output=True, text=True).stdout
        assert [line.split()[-1] for line in listing.splitlines()] == ORDER
    verified = BundleReader(bundle).verify()
    assert verified.signer is not None and verified.checks == b'{"checks": []}\n'


def test_in_place_bundle_round_trips(chain: Chain, signing_key: SigningKey, tmp_path: Path) -> None:
    from hypervisors import qemu_img

    bundle = _full_bundle(chain, tmp_path / "state.vmlstate", signing_key)
    result = BundleReader(bundle).materialise(tmp_path / "recv" / "st", base=LocalReference(chain.base, "raw"))
    assert qemu_img.compare(result.disks["system"], "qcow2", chain.layer2, "qcow2")
    assert result.memory is not None and result.memory.read_bytes() == b"guest memory " * 100_000


def test_export_keeps_one_file_and_no_work_files(chain: Chain, tmp_path: Path) -> None:
    """While the manifest is written, the bundle's temporary sibling is the only file: no compressed copy elsewhere."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    seen: list[list[str]] = []

    def progress(message: str) -> None:
        if message == "writing the manifest":
            seen.append(sorted(p.name for p in out_dir.iterdir()) + sorted(p.name for p in work.rglob("*")))

    writer = BundleWriter(chain.base_ref(), state={"id": "st-1"}, vm_spec={}, workdir=work)
    writer.add_disk("system", chain.layer2)
    writer.write(out_dir / "s.vmlstate", progress=progress)
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].startswith(".s.vmlstate.tmp-")
    assert [p.name for p in out_dir.iterdir()] == ["s.vmlstate"]


@pytest.mark.parametrize("when", ["disk", "manifest"])
def test_interrupted_export_leaves_nothing(chain: Chain, tmp_path: Path, when: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def progress(message: str) -> None:
        if (when == "disk" and message.startswith("disk system")) or message == "writing the manifest":
            raise KeyboardInterrupt

    writer = BundleWriter(chain.base_ref(), state={"id": "st-1"}, vm_spec={})
    writer.add_disk("system", chain.layer2)
    with pytest.raises(KeyboardInterrupt):
        writer.write(out_dir / "s.vmlstate", progress=progress)
    assert list(out_dir.iterdir()) == []


def test_member_past_8_gib_keeps_its_three_block_header(tmp_path: Path) -> None:
    """A member too large for the ustar size field gets its size from the PAX header, in the same room."""
    path = tmp_path / "big.tar"
    size = (9 << 30) + 5
    with open(path, "wb") as fh:
        tar = InPlaceTar(fh, {"manifest.json": 512})
        with tar.member("disk-system.blocks.zst") as dest:
            start = dest.tell()
            dest.seek(size - 1, 1)
            dest.write(b"z")
            assert dest.tell() - start == size
        tar.close()
        tar.fill_front({"manifest.json": json.dumps({"x": 1}).encode().ljust(512)})
    with tarfile.open(path, "r:") as tf:
        first, second = tf.getmembers()
    assert (first.name, first.size) == ("manifest.json", 512)
    assert (second.name, second.size) == ("disk-system.blocks.zst", size)
    assert second.offset_data == 2 * 512 + IN_PLACE_HEADER
