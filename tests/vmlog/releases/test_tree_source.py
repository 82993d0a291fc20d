"""HTTP release trees (catalogue file with per-entry digests) served over real HTTP."""

from __future__ import annotations

import pytest
from release_repos import RELEASE_FILES

from vmlog.releases import HttpTreeSource
from vmlog.releases.errors import BadCatalog, DigestMismatch
from vmlog.releases.tree_source import Catalogue


def source_for(server) -> HttpTreeSource:
    return HttpTreeSource(f"{server.url}/tree", pattern="releases/{series}/{release}", proxy="")


def test_lists_releases_with_revision_and_tag(tree_repo, server, tmp_path):
    releases = source_for(server).list_releases(tmp_path / "cache")
    assert [r.name for r in releases] == ["24.0.1", "24.0.3", "25.1.0"]
    assert {(r.revision, r.tag) for r in releases} == {(3, "june")}


def test_reads_verified_files(tree_repo, server, tmp_path):
    source = source_for(server)
    release = source.resolve("24.0/24.0.3", tmp_path / "cache")
    tree = source.open_tree(release, tmp_path / "cache", 1 << 30)
    entry = tree.lookup("/lib/libphysics.so")
    assert tree.fetch_chunk(entry.chunks[0]).read_bytes() == RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]
    assert sorted(e.name for e in tree.listdir("")) == ["bin", "lib", "share"]


def test_tampered_file_is_refused(tree_repo, server, tmp_path):
    source = source_for(server)
    release = source.resolve("24.0.3", tmp_path / "cache")
    (tree_repo.webroot / "releases/24.0/24.0.3/share/README").write_bytes(b"Trojan\n")
    tree = source.open_tree(release, tmp_path / "cache", 1 << 30)
    with pytest.raises(DigestMismatch, match="catalogue's sha256"):
        tree.fetch_chunk(tree.lookup("/share/README").chunks[0])


def test_tampered_catalogue_is_refused(tree_repo, server, tmp_path):
    catalogue = tree_repo.webroot / ".vmlcatalog"
    catalogue.write_bytes(catalogue.read_bytes() + b"F\t644\t1\t" + b"0" * 64 + b"\t0\treleases/extra\n")
    with pytest.raises(DigestMismatch, match="catalogue does not match"):
        source_for(server).list_releases(tmp_path / "cache")


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "releases/../../x"])
def test_catalogue_paths_cannot_escape(path):
    text = f"# vmlog release tree 1\nD\t755\t0\t-\t0\treleases\nF\t644\t1\t{'0' * 64}\t0\t{path}\n"
    with pytest.raises(BadCatalog):
        Catalogue(text)


def test_pinned_revision_offline(tree_repo, server, tmp_path):
    source = source_for(server)
    release = source.resolve("24.0.3", tmp_path / "cache")
    tree = source.open_tree(release, tmp_path / "cache", 1 << 30)
    tree.fetch_chunk(tree.lookup("/share/README").chunks[0])
    server.stop()
    again = source.resolve("24.0.3", tmp_path / "cache", revision=3, pin=release.pin)
    tree = source.open_tree(again, tmp_path / "cache", 1 << 30)
    assert tree.fetch_chunk(tree.lookup("/share/README").chunks[0]).read_bytes() == b"Physics release 24.0.3\n"


def test_fetches_go_through_the_configured_proxy(tree_repo, server, tmp_path):
    from release_repos import ForwardProxy

    proxy = ForwardProxy()
    try:
        source = HttpTreeSource(f"{server.url}/tree", pattern="releases/{series}/{release}", proxy=proxy.url)
        release = source.resolve("25.1.0", tmp_path / "cache")
        tree = source.open_tree(release, tmp_path / "cache", 1 << 30)
        assert tree.fetch_chunk(tree.lookup("/share/README").chunks[0]).read_bytes() == b"Physics release 25.1.0\n"
    finally:
        proxy.stop()
    assert f"{server.url}/tree/.vmlcatalog.sha256" in proxy.relayed
    assert f"{server.url}/tree/releases/25.1/25.1.0/share/README" in proxy.relayed
