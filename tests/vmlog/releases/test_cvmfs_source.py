"""CernVM-FS sources against a repository built in the documented format and served over real HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from release_repos import RELEASE_FILES, CvmfsRepoBuilder, ServedDirectory, new_key

from vmlog.releases import CvmfsSource
from vmlog.releases.errors import DigestMismatch, ReleaseNotFound, SignatureError, SourceUnreachable

PATTERN = "sw/software/{series}/{release}"


def source_for(repo: CvmfsRepoBuilder, server: ServedDirectory, **kwargs: object) -> CvmfsSource:
    return CvmfsSource(f"{server.url}/cvmfs/{repo.name}", repo.master_public_pem(), pattern=PATTERN, proxy="", **kwargs)


def read_all(tree, path: str) -> bytes:
    entry = tree.lookup(path)
    assert entry is not None and entry.kind == "file"
    data = b"".join(tree.fetch_chunk(c).read_bytes() for c in entry.chunks)
    assert len(data) == entry.size
    return data


def test_lists_releases_with_revision_and_tag(cvmfs_repo, server, tmp_path):
    releases = source_for(cvmfs_repo, server).list_releases(tmp_path / "cache")
    assert [(r.series, r.name) for r in releases] == [("24.0", "24.0.1"), ("24.0", "24.0.3"), ("25.1", "25.1.0")]
    assert {r.revision for r in releases} == {7}
    assert {r.tag for r in releases} == {"prod-2024"}
    assert releases[1].path == "sw/software/24.0/24.0.3"


def test_reads_files_across_nested_and_chunked_catalogs(cvmfs_repo, server, tmp_path):
    source = source_for(cvmfs_repo, server)
    release = source.resolve("24.0.3", tmp_path / "cache")
    tree = source.open_tree(release, tmp_path / "cache", 1 << 30)
    try:
        assert sorted(e.name for e in tree.listdir("")) == ["bin", "lib", "share"]
        library = read_all(tree, "/lib/libphysics.so")
        assert library == RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]
        assert len(tree.lookup("/lib/libphysics.so").chunks) == 3
        assert read_all(tree, "/share/README") == b"Physics release 24.0.3\n"
        link = tree.lookup("/bin/latest")
        assert (link.kind, link.target) == ("link", "setup.sh")
        assert tree.lookup("/nothing") is None
    finally:
        tree.close()


def test_bad_manifest_signature_is_refused(cvmfs_repo, server, tmp_path):
    manifest = cvmfs_repo.root / ".cvmfspublished"
    text = manifest.read_bytes().split(b"--\n")[0]
    cvmfs_repo.write_manifest(text, signing_key=new_key())  # signed, but not by the whitelisted certificate
    with pytest.raises(SignatureError, match="bad signature"):
        source_for(cvmfs_repo, server).list_releases(tmp_path / "cache")


def test_altered_manifest_text_is_refused(cvmfs_repo, server, tmp_path):
    manifest = cvmfs_repo.root / ".cvmfspublished"
    manifest.write_bytes(manifest.read_bytes().replace(b"\nS7\n", b"\nS8\n"))
    with pytest.raises(SignatureError, match="altered"):
        source_for(cvmfs_repo, server).list_releases(tmp_path / "cache")


def test_expired_whitelist_is_refused(cvmfs_repo, server, tmp_path):
    cvmfs_repo.write_whitelist(expires=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with pytest.raises(SignatureError, match="expired"):
        source_for(cvmfs_repo, server).list_releases(tmp_path / "cache")


def test_whitelist_of_another_master_key_is_refused(cvmfs_repo, server, tmp_path):
    other = CvmfsRepoBuilder(tmp_path / "other", name=cvmfs_repo.name)
    source = CvmfsSource(f"{server.url}/cvmfs/{cvmfs_repo.name}", other.master_public_pem(), pattern=PATTERN, proxy="")
    with pytest.raises(SignatureError, match="not signed by its master key"):
        source.list_releases(tmp_path / "cache")


def test_whitelist_for_another_repository_is_refused(cvmfs_repo, server, tmp_path):
    cvmfs_repo.write_whitelist(repository="other.example.org")
    with pytest.raises(SignatureError, match="other.example.org"):
        source_for(cvmfs_repo, server).list_releases(tmp_path / "cache")


def test_tampered_object_is_refused_and_not_cached(cvmfs_repo, server, tmp_path):
    source = source_for(cvmfs_repo, server)
    release = source.resolve("24.0.3", tmp_path / "cache")
    cvmfs_repo.tamper("sw/software/24.0/24.0.3/share/README", b"Trojan\n")
    tree = source.open_tree(release, tmp_path / "cache", 1 << 30)
    try:
        entry = tree.lookup("/share/README")
        with pytest.raises(DigestMismatch, match="does not match its content hash"):
            tree.fetch_chunk(entry.chunks[0])
        with pytest.raises(DigestMismatch):  # still refused: nothing bad went into the cache
            tree.fetch_chunk(entry.chunks[0])
    finally:
        tree.close()


def test_pinned_revision_works_offline_from_the_cache(cvmfs_repo, server, tmp_path):
    cache = tmp_path / "cache"
    source = source_for(cvmfs_repo, server)
    release = source.resolve("24.0.3", cache)
    tree = source.open_tree(release, cache, 1 << 30)
    assert read_all(tree, "/share/README") == b"Physics release 24.0.3\n"
    tree.close()
    server.stop()
    with pytest.raises(SourceUnreachable):
        source.list_releases(cache)
    again = source.resolve("24.0.3", cache, revision=release.revision, pin=release.pin)
    assert (again.revision, again.pin, again.path) == (7, release.pin, release.path)
    tree = source.open_tree(again, cache, 1 << 30)
    try:
        assert read_all(tree, "/share/README") == b"Physics release 24.0.3\n"
    finally:
        tree.close()


def test_older_revision_resolves_through_the_signed_history(cvmfs_repo, server, tmp_path):
    cache = tmp_path / "cache"
    source = source_for(cvmfs_repo, server)
    old = source.resolve("24.0.3", cache)
    cvmfs_repo.add_file("sw/software/24.0/24.0.3/share/README", b"Physics release 24.0.3, patched\n")
    cvmfs_repo.publish(8, "prod-2024-patch")
    current = source.resolve("24.0.3", cache)
    assert (current.revision, current.tag) == (8, "prod-2024-patch")
    assert current.pin != old.pin
    pinned = source.resolve("24.0.3", cache, revision=7, pin=old.pin)
    assert (pinned.pin, pinned.tag) == (old.pin, "prod-2024")
    tree = source.open_tree(pinned, cache, 1 << 30)
    try:
        assert read_all(tree, "/share/README") == b"Physics release 24.0.3\n"
    finally:
        tree.close()
    with pytest.raises(ReleaseNotFound, match="revision 5"):
        source.resolve("24.0.3", cache, revision=5)


def test_objects_are_content_addressed_by_their_compressed_bytes(cvmfs_repo):
    for relative in cvmfs_repo.object_of["/sw/software/25.1/25.1.0/share/README"]:
        stored = (cvmfs_repo.root / relative).read_bytes()
        name = Path(relative).parent.name + Path(relative).name
        assert hashlib.sha1(stored).hexdigest() == name
