"""CernVM-FS repositories written by ``cvmfs_server`` (tests/fixtures/real/cvmfs) read, verified and mounted.

The real repositories' whitelists expired in 2015: their untouched signature chain is checked at a
time inside their validity; to mount them the whitelist is re-signed with the repository's own
master key (shipped with the fixture), keeping its name and fingerprint lines, as
``cvmfs_server resign`` does. Catalogs, certificates, manifests and objects stay as written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import sqlite3
import tarfile
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from release_repos import CvmfsRepoBuilder, ServedDirectory, raw_rsa_sign

from vmlog.releases import CvmfsSource, mount_release, running_mounts, umount
from vmlog.releases.content_hash import ContentHash
from vmlog.releases.signed_letter import Manifest, Whitelist, load_master_keys, verify_manifest, verify_whitelist

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "cvmfs"
needs_fuse = pytest.mark.skipif(
    not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None, reason="needs /dev/fuse and fuse3"
)


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _unpack(archive: Path, name: str, webroot: Path) -> Path:
    """The repository directory of ``archive`` laid out as ``webroot/cvmfs/<name>``."""
    root = webroot / "cvmfs" / name
    for member, data in _members(archive).items():
        if f"cvmfs/{name}/" in member:
            target = root / member.split(f"cvmfs/{name}/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return root


REPOS = {  # name: (repository archive, master private key PEM, master public key PEM)
    "legacy_aufs.cern.ch": lambda: (
        REAL / "legacy_aufs.cern.ch.tar.gz",
        _members(REAL / "legacy_aufs.cern.ch.keys.tar.gz")["etc/cvmfs/keys/legacy_aufs.cern.ch.masterkey"],
        _members(REAL / "legacy_aufs.cern.ch.keys.tar.gz")["etc/cvmfs/keys/legacy_aufs.cern.ch.pub"],
    ),
    "test.cern.ch": lambda: (
        REAL / "test.cern.ch.tar.gz",
        (REAL / "test.cern.ch.masterkey").read_bytes(),
        (REAL / "test.cern.ch.pub").read_bytes(),
    ),
}


def _certificate(root: Path, manifest: Manifest) -> bytes:
    return zlib.decompress((root / manifest.certificate.with_suffix("X").object_path).read_bytes())  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(REPOS))
def test_real_signature_chain_verifies_inside_its_validity(name, tmp_path):
    archive, _private, public = REPOS[name]()
    root = _unpack(archive, name, tmp_path)
    whitelist = Whitelist.parse((root / ".cvmfswhitelist").read_bytes())
    assert whitelist.repository == name
    assert all(p.algorithm == "sha1" for p in whitelist.fingerprints) and whitelist.fingerprints
    keys = load_master_keys(public)
    verify_whitelist(whitelist, keys, name, now=whitelist.created + dt.timedelta(days=1))
    manifest = Manifest.parse((root / ".cvmfspublished").read_bytes())
    verify_manifest(manifest, _certificate(root, manifest), whitelist)
    # cvmfs counts the expiry in whole hours: expired from the start of the expiry hour
    with pytest.raises(Exception, match="expired"):
        verify_whitelist(whitelist, keys, name, now=whitelist.expires + dt.timedelta(seconds=1))


def _resign(root: Path, master_private_pem: bytes) -> None:
    """Renew the whitelist's dates and signature, keeping the name and fingerprint lines verbatim."""
    data = (root / ".cvmfswhitelist").read_bytes()
    lines = data[: data.index(b"\n--\n") + 1].split(b"\n")
    now = dt.datetime.now(dt.UTC)
    lines[0] = f"{now:%Y%m%d%H%M%S}".encode()
    lines[1] = f"E{now + dt.timedelta(days=30):%Y%m%d%H%M%S}".encode()
    text = b"\n".join(lines)
    printed = hashlib.sha1(text).hexdigest().encode()
    key = serialization.load_pem_private_key(master_private_pem, password=None)
    (root / ".cvmfswhitelist").write_bytes(text + b"--\n" + printed + b"\n" + raw_rsa_sign(key, printed))  # type: ignore[arg-type]


@pytest.fixture
def cleanup(vmlog_home):
    yield
    for handle in running_mounts():
        umount(handle.name)


@needs_fuse
def test_real_cvmfs_server_repository_mounts_and_reads(tmp_path, cleanup):
    name = "legacy_aufs.cern.ch"
    archive, private, public = REPOS[name]()
    root = _unpack(archive, name, tmp_path / "www")
    _resign(root, private)
    served = ServedDirectory(tmp_path / "www")
    try:
        source = CvmfsSource(f"{served.url}/cvmfs/{name}", public.decode(), pattern="{release}", proxy="")
        names = sorted(r.name for r in source.list_releases(tmp_path / "cache"))
        assert names == ["doesnt_need_migration", "needs_commit_due_to_child", "needs_migration"]
        mount_release(source, "needs_migration", at=tmp_path / "mnt")
        mnt = tmp_path / "mnt"
        assert (mnt / "foo").read_bytes() == b"foo\n"
        assert os.readlink(mnt / "symlink_foo") == "foo"
        assert (mnt / "hardlink_bar").read_bytes() == b"bar\n"
        assert (mnt / "doesnt_need_migration" / "baz").read_bytes() == b"baz\n"  # a nested catalog
        assert (mnt / "simple_directory" / "hardlink_foo").read_bytes() == b"foo\n"
    finally:
        served.stop()


@needs_fuse
def test_real_chunked_file_of_cvmfs_server_mounts_and_reads(tmp_path, cleanup):
    """python-cvmfsutils' repository: a 20 MiB file cut into chunks by cvmfs_server, nested catalogs."""
    name = "test.cern.ch"
    archive, private, public = REPOS[name]()
    root = _unpack(archive, name, tmp_path / "www")
    _resign(root, private)
    served = ServedDirectory(tmp_path / "www")
    try:
        source = CvmfsSource(f"{served.url}/cvmfs/{name}", public.decode(), pattern="{release}", proxy="")
        mount_release(source, "bar", at=tmp_path / "mnt")
        mnt = tmp_path / "mnt"
        assert (mnt / "hello_world").read_bytes() == b"hello world\n"
        assert (mnt / "author").read_text(encoding="utf-8") == "Ren\u00e9 Meusel\n"
        big = (mnt / "big").read_bytes()
        assert len(big) == 20 << 20 and big.count(0) == len(big)
        assert sorted(os.listdir(mnt / "1")) == [".cvmfscatalog", "foo"]  # a nested catalog
    finally:
        served.stop()


@pytest.mark.parametrize("name", sorted(REPOS))
def test_builder_writes_what_cvmfs_server_writes(name, tmp_path):
    """Tables, properties and flags of the repository builder used by the other release tests."""
    archive, _private, _public = REPOS[name]()
    real = _unpack(archive, name, tmp_path / "real")
    built = CvmfsRepoBuilder(tmp_path / "built", name=name)
    built.add_file("dir/file", b"data\n")
    built.add_link("dir/link", "file")
    built.publish(1)
    for tree in (real, built.root):
        manifest = Manifest.parse((tree / ".cvmfspublished").read_bytes())
        history = _db(tree, manifest.history, tmp_path / f"h-{tree.parent.parent.name}.db")  # type: ignore[arg-type]
        tables = {r[0] for r in history.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"properties", "tags", "recycle_bin"} <= tables
        assert dict(history.execute("SELECT key, value FROM properties"))["fqrn"] == name
        catalog = _db(tree, manifest.root_catalog, tmp_path / f"c-{tree.parent.parent.name}.db")
        props = dict(catalog.execute("SELECT key, value FROM properties"))
        assert props["schema"] == "2.5" and "revision" in props
        links = {flags for (flags,) in _all_links(tree, tmp_path)}
        if links:  # cvmfs_server flags a link FILE|LINK
            assert links == {12}


def _db(tree: Path, content: ContentHash, dest: Path) -> sqlite3.Connection:
    dest.write_bytes(zlib.decompress((tree / content.object_path).read_bytes()))
    return sqlite3.connect(dest)


def _all_links(tree: Path, tmp: Path) -> list[tuple[int]]:
    flags: list[tuple[int]] = []
    for index, path in enumerate(sorted(tree.glob("data/*/*C"))):
        dest = tmp / f"link-{tree.parent.parent.name}-{index}.db"
        dest.write_bytes(zlib.decompress(path.read_bytes()))
        flags += sqlite3.connect(dest).execute("SELECT flags FROM catalog WHERE symlink != ''").fetchall()
    return flags


def test_real_history_database_lists_tags(tmp_path):
    archive, _private, _public = REPOS["legacy_aufs.cern.ch"]()
    root = _unpack(archive, "legacy_aufs.cern.ch", tmp_path)
    manifest = Manifest.parse((root / ".cvmfspublished").read_bytes())
    history = _db(root, manifest.history, tmp_path / "h.db")  # type: ignore[arg-type]
    revisions = [r for (r,) in history.execute("SELECT revision FROM tags")]
    assert manifest.revision in revisions


def test_archives_are_small():
    assert all(p.stat().st_size < 64 * 1024 for p in REAL.iterdir())
