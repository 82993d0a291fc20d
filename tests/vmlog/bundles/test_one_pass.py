"""One-pass import: the header checked first, every digest while the layers are written, nothing kept on a mismatch."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest
from bundle_fixtures import DISK_MEMBER, Chain, write_bundle

from hypervisors import qemu_img
from vmlog.bundles import BundleReader, BundleRejected, LocalReference, SigningKey
from vmlog.bundles import members as members_module


def _flip_disk_byte(bundle: Path) -> None:
    """One byte of the disk member's stored data changed in place: sizes and headers stay right."""
    with tarfile.open(bundle, "r:") as tf:
        info = tf.getmember(DISK_MEMBER)
    with open(bundle, "r+b") as fh:
        fh.seek(info.offset_data + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_header_check_reads_no_disk_data_and_import_decompresses_once(
    chain: Chain, signing_key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = write_bundle(chain, tmp_path / "state.vmlstate", signing_key=signing_key)
    calls: list[str] = []
    real = members_module.decompress_stream

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(kwargs["what"])
        return real(*args, **kwargs)

    monkeypatch.setattr(members_module, "decompress_stream", counted)
    reader = BundleReader(bundle)
    header = reader.verify_header()
    assert calls == [] and header.signer is not None and header.labels == ["system"]
    result = reader.materialise(tmp_path / "recv" / "st", base=LocalReference(chain.base, "raw"))
    assert calls == [f"member {DISK_MEMBER!r}"]
    assert qemu_img.compare(result.disks["system"], "qcow2", chain.layer2, "qcow2")
    assert reader.verify() is result.bundle and len(calls) == 1  # a later full check costs nothing


def test_digest_mismatch_found_while_writing_leaves_nothing(chain: Chain, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "state.vmlstate")
    _flip_disk_byte(bundle)
    reader = BundleReader(bundle)
    reader.verify_header()  # the header is intact: only the data is damaged
    import_root = tmp_path / "import"
    import_root.mkdir()
    with pytest.raises(BundleRejected) as info:
        reader.materialise(import_root / "state", base=LocalReference(chain.base, "raw"))
    assert info.value.reason == "digest"
    assert list(import_root.iterdir()) == []
    with pytest.raises(BundleRejected) as again:
        BundleReader(bundle).verify()
    assert again.value.reason == "digest"


def test_header_check_refuses_a_member_cut_short(chain: Chain, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "state.vmlstate")
    with tarfile.open(bundle, "r:") as tf:
        info = tf.getmember(DISK_MEMBER)
    cut = tmp_path / "cut.vmlstate"
    cut.write_bytes(bundle.read_bytes()[: info.offset_data + info.size // 2])
    with pytest.raises(BundleRejected) as refused:
        BundleReader(cut).verify_header()
    assert refused.value.reason == "truncated"
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() != hashlib.sha256(cut.read_bytes()).hexdigest()
