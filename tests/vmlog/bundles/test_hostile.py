"""A corpus of hostile bundles: each is rejected with its own reason, and nothing is left on disk."""

from __future__ import annotations

import json
import struct
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from bundle_fixtures import DISK_MEMBER, Chain, forge_with_disk, member, pack, read_members, reseal, write_bundle

from vmlog.bundles import BundleReader, BundleRejected, LocalReference
from vmlog.bundles.blocks import MAGIC
from vmlog.bundles.delta import REFERENCE_PLACEHOLDER


def _qcow2(tmp: Path, *options: str, size: int = 32 << 20) -> bytes:
    """Bytes of a qcow2 made by qemu-img with ``options`` (never opened with its backing)."""
    path = tmp / "forged.qcow2"
    path.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *options, str(path), str(size)], check=True)
    return path.read_bytes()


def _repack(
    valid: Path, out: Path, edit: Callable[[dict], None] | None = None, extra=(), drop=(), keep_signature=False
) -> Path:
    """``valid`` re-packed with an edited manifest; its signature is dropped unless asked to keep it."""
    members = read_members(valid)
    if not keep_signature:
        members.pop("manifest.sig")
    manifest = json.loads(members["manifest.json"])
    if edit:
        edit(manifest)
    infos = [member("manifest.json", json.dumps(manifest).encode())]
    infos += [member(n, d) for n, d in members.items() if n != "manifest.json" and n not in drop]
    return pack(out, [*infos, *extra])


def _bomb(valid: Path, out: Path, declared: int | None) -> Path:
    """The disk member replaced by 300 MiB of zeros in ~10 KB of zstd, digests all correct.

    The zeros follow a valid block-list header and a data record, so the block decoder, which sees
    the bytes as they are decompressed, takes them as data: only the size limits can stop it.
    """
    members = read_members(valid)
    members.pop("manifest.sig")
    manifest = json.loads(members["manifest.json"])
    name = DISK_MEMBER
    cctx = zstandard.ZstdCompressor(level=1)
    chunks = cctx.compressobj()
    prefix = MAGIC + struct.pack(">IQ", 4096, manifest["disks"][0]["virtual_size"]) + struct.pack(">BQI", 1, 0, 1024)
    stored = chunks.compress(prefix) + b"".join(chunks.compress(bytes(1 << 20)) for _ in range(300)) + chunks.flush()
    members[name] = stored
    manifest["members"][name]["stored_size"] = len(stored)
    mbytes = json.loads(reseal(manifest, members))
    mbytes["members"][name]["raw_size"] = declared if declared is not None else 300 << 20
    return pack(
        out,
        [member("manifest.json", json.dumps(mbytes).encode())]
        + [member(n, d) for n, d in members.items() if n != "manifest.json"],
    )


def _flip_byte(path: Path, member_name: str, out: Path) -> Path:
    data = bytearray(path.read_bytes())
    with tarfile.open(path, "r:") as tf:
        offset = tf.getmember(member_name).offset_data
    data[offset + 20] ^= 0xFF
    out.write_bytes(bytes(data))
    return out


def _truncate(path: Path, member_name: str, out: Path) -> Path:
    with tarfile.open(path, "r:") as tf:
        offset = tf.getmember(member_name).offset_data
    out.write_bytes(path.read_bytes()[: offset + 100])
    return out


CASES: dict[str, tuple[str, str, Callable[[Chain, Path, Path], Path]]] = {
    "traversal": (
        "traversal",
        "leaves the bundle",
        lambda c, v, t: _repack(v, t / "b.vmlstate", extra=[member("../../evil.sh", b"#!/bin/sh\n")]),
    ),
    "absolute-path": (
        "traversal",
        "leaves the bundle",
        lambda c, v, t: _repack(v, t / "b.vmlstate", extra=[member("/etc/cron.d/evil", b"x")]),
    ),
    "symlink": (
        "link",
        "symbolic link",
        lambda c, v, t: _repack(
            v,
            t / "b.vmlstate",
            drop=["logbook.json"],
            extra=[member("logbook.json", kind=tarfile.SYMTYPE, link="/etc/passwd")],
        ),
    ),
    "hardlink": (
        "link",
        "hard link",
        lambda c, v, t: _repack(
            v,
            t / "b.vmlstate",
            drop=["logbook.json"],
            extra=[member("logbook.json", kind=tarfile.LNKTYPE, link="/etc/shadow")],
        ),
    ),
    "device": (
        "special",
        "not a regular file",
        lambda c, v, t: _repack(v, t / "b.vmlstate", extra=[member("disk", kind=tarfile.CHRTYPE)]),
    ),
    "backing-host-path": (
        "backing",
        "'/etc/passwd'",
        lambda c, v, t: forge_with_disk(v, t / "b.vmlstate", _qcow2(t, "-u", "-b", "/etc/passwd", "-F", "raw")),
    ),
    "backing-json": (
        "backing",
        "json:",
        lambda c, v, t: forge_with_disk(
            v,
            t / "b.vmlstate",
            _qcow2(
                t, "-u", "-b", 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/passwd"}}', "-F", "raw"
            ),
        ),
    ),
    "backing-wrong-format": (
        "backing",
        "backing format",
        lambda c, v, t: forge_with_disk(
            v, t / "b.vmlstate", _qcow2(t, "-u", "-b", REFERENCE_PLACEHOLDER, "-F", "qcow2")
        ),
    ),
    "data-file": (
        "data-file",
        "external data file",
        lambda c, v, t: forge_with_disk(
            v,
            t / "b.vmlstate",
            _qcow2(t, "-u", "-b", REFERENCE_PLACEHOLDER, "-F", "raw", "-o", f"data_file={t / 'scratch.raw'}"),
        ),
    ),
    "raw-disguised-as-qcow2": (
        "not-qcow2",
        "not a qcow2 image",
        lambda c, v, t: forge_with_disk(v, t / "b.vmlstate", b"\0" * 65536),
    ),
    "truncated": (
        "truncated",
        "truncated",
        lambda c, v, t: _truncate(v, DISK_MEMBER, t / "b.vmlstate"),
    ),
    "member-missing": (
        "truncated",
        "ends before member",
        lambda c, v, t: _repack(v, t / "b.vmlstate", drop=[DISK_MEMBER]),
    ),
    "wrong-digest": (
        "digest",
        "does not match its sha256",
        lambda c, v, t: _flip_byte(v, DISK_MEMBER, t / "b.vmlstate"),
    ),
    "oversized-manifest": (
        "manifest-size",
        "limit 1048576",
        lambda c, v, t: _repack(v, t / "b.vmlstate", edit=lambda m: m["state"].update(pad="x" * (2 << 20))),
    ),
    "future-version": (
        "future-version",
        "format version 99",
        lambda c, v, t: _repack(v, t / "b.vmlstate", edit=lambda m: m.update(format_version=99)),
    ),
    "unknown-feature": (
        "unknown-feature",
        "quantum-dedup",
        lambda c, v, t: _repack(v, t / "b.vmlstate", edit=lambda m: m["features_required"].append("quantum-dedup")),
    ),
    "unlisted-member": (
        "unexpected",
        "not listed in the manifest",
        lambda c, v, t: _repack(v, t / "b.vmlstate", extra=[member("payload.bin", b"x")]),
    ),
    "manifest-not-first": (
        "manifest",
        "first member",
        lambda c, v, t: pack(
            t / "b.vmlstate",
            [member(n, d) for n, d in reversed(list(read_members(v).items()))],
        ),
    ),
    "zstd-bomb-lying-size": (
        "bomb",
        "more than the 1048576 bytes",
        lambda c, v, t: _bomb(v, t / "b.vmlstate", 1 << 20),
    ),
    "zstd-bomb-declared": ("bomb", "decompressed", lambda c, v, t: _bomb(v, t / "b.vmlstate", None)),
    "tampered-signed-manifest": (
        "signature",
        "does not match the manifest",
        lambda c, v, t: _repack(
            v, t / "b.vmlstate", edit=lambda m: m["state"].update(name="innocent"), keep_signature=True
        ),
    ),
    "not-an-archive": (
        "not-a-bundle",
        "not a vmlstate archive",
        lambda c, v, t: (t / "b.vmlstate").write_bytes(b"PK\x03\x04 this is a zip") and t / "b.vmlstate",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_bundle_is_rejected_and_leaves_nothing(case: str, chain: Chain, signing_key, tmp_path: Path) -> None:
    reason, words, forge = CASES[case]
    valid = write_bundle(chain, tmp_path / "valid.vmlstate", signing_key=signing_key)
    work = tmp_path / "forge"
    work.mkdir()
    bundle = forge(chain, valid, work)
    import_root = tmp_path / "import"
    import_root.mkdir()
    passwd_before = Path("/etc/passwd").read_bytes()

    with pytest.raises(BundleRejected) as info:
        BundleReader(bundle).materialise(import_root / "state", base=LocalReference(chain.base, "raw"))

    assert info.value.reason == reason, str(info.value)
    assert words in str(info.value)
    assert list(import_root.iterdir()) == []
    assert Path("/etc/passwd").read_bytes() == passwd_before


def test_base_with_other_digest_is_rejected(chain: Chain, tmp_path: Path) -> None:
    bundle = write_bundle(chain, tmp_path / "valid.vmlstate")
    other = tmp_path / "other.raw"
    data = bytearray(chain.base.read_bytes())
    data[12345] ^= 1
    other.write_bytes(bytes(data))
    import_root = tmp_path / "import"
    import_root.mkdir()
    with pytest.raises(BundleRejected) as info:
        BundleReader(bundle).materialise(import_root / "state", base=LocalReference(other, "raw"))
    assert info.value.reason == "base-digest"
    assert "fetch the base appliance" in info.value.fix
    assert list(import_root.iterdir()) == []


def test_incremental_bundle_without_its_since_state_is_rejected(chain: Chain, tmp_path: Path) -> None:
    from vmlog.bundles import BundleWriter, SinceRef

    writer = BundleWriter(
        chain.base_ref(), state={"id": "b"}, vm_spec={}, since=SinceRef("st-a", "d", {"system": chain.layer1})
    )
    writer.add_disk("system", chain.layer2)
    bundle = writer.write(tmp_path / "incr.vmlstate").path
    import_root = tmp_path / "import"
    import_root.mkdir()
    with pytest.raises(BundleRejected) as info:
        BundleReader(bundle).materialise(import_root / "state", base=LocalReference(chain.base, "raw"))
    assert info.value.reason == "since"
    assert list(import_root.iterdir()) == []


def test_data_file_target_is_never_touched(chain: Chain, tmp_path: Path) -> None:
    """A delta naming an existing host file as its data file must not zero or read it."""
    victim = tmp_path / "victim01.raw"  # as long as the name it replaces in the header
    victim.write_bytes(b"precious" * 8192)
    forged_image = tmp_path / "f.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            REFERENCE_PLACEHOLDER,
            "-F",
            "raw",
            "-o",
            f"data_file={tmp_path / 'new-data.raw'}",
            str(forged_image),
            str(32 << 20),
        ],
        check=True,
    )
    raw = forged_image.read_bytes().replace(str(tmp_path / "new-data.raw").encode(), str(victim).encode())
    assert str(victim).encode() in raw
    valid = write_bundle(chain, tmp_path / "valid.vmlstate")
    bundle = forge_with_disk(valid, tmp_path / "b.vmlstate", raw)
    with pytest.raises(BundleRejected):
        BundleReader(bundle).materialise(tmp_path / "import" / "s", base=LocalReference(chain.base, "raw"))
    assert victim.read_bytes() == b"precious" * 8192
