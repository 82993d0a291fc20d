"""A damaged or hostile archive is refused before anything is written: the home's file listing stays the same.

Each case changes one thing: a byte flipped, the file cut short, a member whose path leaves the archive,
a layer whose qcow2 header names a backing file outside it (with every digest made to match, so only the
header check can catch it).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from archive_fixtures import three_state_project

from vmlog.app.archive import archive_project, unarchive_project, verify_archive
from vmlog.archive.errors import ArchiveRejected
from vmlog.archive.tar_out import TarStream
from vmlog.workspace import Workspace


def listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def archived(vmlog_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Workspace, Path]:
    """An intact archive, and a second home (current) with its listing taken."""
    made = three_state_project(vmlog_home, tmp_path)
    out = tmp_path / "analysis.vmlarchive"
    archive_project("analysis", out, ctx=made.ctx)
    other = tmp_path / "other-home"
    other.mkdir()
    monkeypatch.setenv("VMLOG_HOME", str(other))
    return out, Workspace.default(), other


def _refused(path: Path, ctx: Workspace, home: Path, reason: str | None = None) -> ArchiveRejected:
    before = listing(home)
    with pytest.raises(ArchiveRejected) as verify_error:
        verify_archive(path)
    with pytest.raises(ArchiveRejected) as error:
        unarchive_project(path, ctx=ctx)
    assert listing(home) == before
    assert not ctx.projects.names()
    if reason is not None:
        assert error.value.reason == reason and verify_error.value.reason == reason
    return error.value


def _members(path: Path) -> dict[str, bytes]:
    """Every member's bytes, decompressed."""
    result = {}
    with tarfile.open(path) as tf:
        for info in tf:
            data = tf.extractfile(info).read()  # type: ignore[union-attr]
            result[info.name] = zstandard.ZstdDecompressor().decompressobj().decompress(data) \
                if info.name.endswith(".zst") else data
    return result


def _rewrite(path: Path, out: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    """The archive with ``change`` applied to its decompressed members, every digest recomputed to match."""
    members = _members(path)
    change(members)
    manifest = json.loads(members.pop("manifest.json"))
    members.pop("digests.json")
    for entry in manifest["members"]:
        data = members[entry["name"]]
        entry.update(raw_size=len(data), raw_sha256=hashlib.sha256(data).hexdigest())
    with open(out, "w+b") as fh:
        tar = TarStream(fh, threads=1)
        stored = {"manifest.json": tar.add_bytes("manifest.json", json.dumps(manifest).encode())}
        for entry in manifest["members"]:
            stored[entry["name"]] = tar.add(entry["name"], [members[entry["name"]]],
                                            compress=entry["compression"] == "zstd")
        digests = {"members": {n: {"stored_size": w.stored_size, "stored_sha256": w.stored_sha256}
                               for n, w in stored.items()}}
        tar.add_bytes("digests.json", json.dumps(digests).encode())
        tar.close()
    return out


def test_the_rewritten_archive_itself_is_accepted(archived, tmp_path: Path) -> None:
    path, _ctx, _home = archived
    assert verify_archive(_rewrite(path, tmp_path / "same.vmlarchive", lambda m: None)).states


def test_one_flipped_byte_anywhere_in_a_member_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tf:
        layer = next(i for i in tf if i.name.startswith("layers/"))
    data[layer.offset_data + layer.size // 2] ^= 0x01
    damaged = tmp_path / "flipped.vmlarchive"
    damaged.write_bytes(bytes(data))
    error = _refused(damaged, ctx, home)
    assert error.reason in ("digest", "corrupt")


def test_a_flipped_byte_in_the_manifest_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived
    data = bytearray(path.read_bytes())
    data[512 + 40] ^= 0x04
    damaged = tmp_path / "manifest.vmlarchive"
    damaged.write_bytes(bytes(data))
    _refused(damaged, ctx, home)


def test_a_truncated_archive_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived
    for keep in (path.stat().st_size - 3000, path.stat().st_size // 2):
        cut = tmp_path / f"cut-{keep}.vmlarchive"
        cut.write_bytes(path.read_bytes()[:keep])
        _refused(cut, ctx, home)


def test_a_member_path_leaving_the_archive_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived
    evil = tmp_path / "escape.vmlarchive"
    with tarfile.open(path) as src, tarfile.open(evil, "w", format=tarfile.GNU_FORMAT) as dst:
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name.startswith("project/states/"):
                info.name = "project/../../escaped.json"
            dst.addfile(info, io.BytesIO(data))
    _refused(evil, ctx, home, "traversal")
    assert not (tmp_path / "escaped.json").exists()


def test_a_layer_backing_onto_a_host_file_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived

    def point_outside(members: dict[str, bytes]) -> None:
        name = next(n for n in members if n.startswith("layers/"))
        layer = tmp_path / "layer.qcow2"
        layer.write_bytes(members[name])
        subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(layer)],
                       check=True)
        members[name] = layer.read_bytes()

    error = _refused(_rewrite(path, tmp_path / "backing.vmlarchive", point_outside), ctx, home, "backing")
    assert "/etc/passwd" in str(error)


def test_a_member_the_format_does_not_have_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived

    def rename(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["members"][0]["name"] = "project/.ssh/authorized_keys"
        members["project/.ssh/authorized_keys"] = members[list(members)[1]]
        members["manifest.json"] = json.dumps(manifest).encode()

    _refused(_rewrite(path, tmp_path / "odd.vmlarchive", rename), ctx, home, "traversal")


def test_a_symbolic_link_member_is_refused(archived, tmp_path: Path) -> None:
    path, ctx, home = archived
    evil = tmp_path / "link.vmlarchive"
    with tarfile.open(path) as src, tarfile.open(evil, "w", format=tarfile.GNU_FORMAT) as dst:
        for info in src:
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "logbook.json":
                link = tarfile.TarInfo("logbook.json")
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
                dst.addfile(link)
                continue
            dst.addfile(info, io.BytesIO(data))
    _refused(evil, ctx, home, "link")


def test_a_layer_claiming_more_than_its_disk_can_hold_is_refused_before_decompressing(archived, tmp_path: Path) -> None:
    path, ctx, home = archived

    def inflate(members: dict[str, bytes]) -> None:
        name = next(n for n in members if n.startswith("layers/"))
        members[name] = members[name] + bytes(200 << 20)  # zeroes: a few KB once compressed

    _refused(_rewrite(path, tmp_path / "bomb.vmlarchive", inflate), ctx, home, "bomb")


def test_an_archive_from_a_future_vmlog_says_to_update(archived, tmp_path: Path) -> None:
    path, ctx, home = archived

    def future(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["format_version"] = 7
        members["manifest.json"] = json.dumps(manifest).encode()

    error = _refused(_rewrite(path, tmp_path / "future.vmlarchive", future), ctx, home, "future-version")
    assert "update vmlog" in (error.fix or "")


def test_host_paths_in_the_archived_vm_spec_are_left_out(archived, tmp_path: Path) -> None:
    path, ctx, _home = archived

    def kernel(members: dict[str, bytes]) -> None:
        record = json.loads(members["project/project.json"])
        record["spec"]["extra"] = {"kernel": "/etc/shadow", "machine": "q35"}
        record["spec"]["cpus"] = 10_000
        members["project/project.json"] = json.dumps(record).encode()

    result = unarchive_project(_rewrite(path, tmp_path / "kernel.vmlarchive", kernel), ctx=ctx)
    spec = ctx.projects.get(result.project).load().spec
    assert spec["extra"] == {"machine": "q35"} and spec["cpus"] == 1
    assert any("kernel" in note for note in result.notes)
