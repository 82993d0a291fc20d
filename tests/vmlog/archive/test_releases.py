"""The release files a project's states use travel in its archive, and read in the new home with no server."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest
from archive_fixtures import three_state_project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "releases"))
from release_repos import RELEASE_FILES, CvmfsRepoBuilder, HttpTreeBuilder, ServedDirectory  # noqa: E402

from vmlog.app.archive import archive_project, unarchive_project  # noqa: E402
from vmlog.projects.releases import ProjectRelease  # noqa: E402
from vmlog.releases import CvmfsSource, HttpTreeSource  # noqa: E402
from vmlog.releases.mounts import default_cache_dir  # noqa: E402
from vmlog.releases.sources import source_from_config  # noqa: E402
from vmlog.workspace import Workspace  # noqa: E402

LIB = "24.0/24.0.3/lib/libphysics.so"


def _http_tree(www: Path, server: ServedDirectory) -> HttpTreeSource:
    builder = HttpTreeBuilder(www / "tree")
    for path, data in RELEASE_FILES.items():
        builder.add_file(f"releases/{path}", data)
    builder.publish(3, "june")
    return HttpTreeSource(f"{server.url}/tree", pattern="releases/{series}/{release}", proxy="")


def _cvmfs(www: Path, server: ServedDirectory) -> CvmfsSource:
    builder = CvmfsRepoBuilder(www)
    for series in ("24.0", "25.1"):
        builder.add_dir(f"sw/software/{series}", nested=True)
    for path, data in RELEASE_FILES.items():
        builder.add_file(f"sw/software/{path}", data, chunk_size=64 * 1024)
    builder.publish(7, "prod-2024")
    return CvmfsSource(f"{server.url}/cvmfs/{builder.name}", builder.master_public_pem(),
                       pattern="sw/software/{series}/{release}", proxy="")


@pytest.mark.parametrize("kind", ["http-tree", "cvmfs"])
def test_release_files_come_along_and_read_offline(kind: str, vmlog_home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    made = three_state_project(vmlog_home, tmp_path)
    (tmp_path / "www").mkdir()
    server = ServedDirectory(tmp_path / "www")
    try:
        source = (_http_tree if kind == "http-tree" else _cvmfs)(tmp_path / "www", server)
        cache = default_cache_dir(made.ctx.home)
        release = source.resolve("24.0.3", cache)
        files = made.ctx.projects.get("analysis")
        state = files.states()[made.state_ids["s2"]]
        record = ProjectRelease("24.0.3", release, source.to_config()).to_dict()
        files.rewrite_state(type(state)(**{**state.__dict__, "release_mounts": [record]}))
        out = tmp_path / "with-release.vmlarchive"
        result = archive_project("analysis", out, ctx=made.ctx)  # fetches what the cache lacks, verified
    finally:
        server.stop()
    assert not [n for n in result.notes if "release" in n]
    assert any(m.name.startswith("releases/") for m in tarfile.open(out))

    monkeypatch.setenv("VMLOG_HOME", str(tmp_path / "new-home"))
    (tmp_path / "new-home").mkdir()
    other = Workspace.default()
    unarchive_project(out, ctx=other)
    (pinned,) = other.projects.get("analysis").states()[made.state_ids["s2"]].release_mounts
    again = source_from_config(pinned["source"])  # the server is gone: only the new home's cache serves it
    new_cache = default_cache_dir(other.home)
    resolved = again.resolve(pinned["release"]["path"], new_cache, revision=pinned["release"]["revision"],
                             pin=pinned["release"]["pin"])
    tree = again.open_tree(resolved, new_cache, 1 << 30)
    entry = tree.lookup("/lib/libphysics.so")
    data = b"".join(tree.fetch_chunk(chunk).read_bytes() for chunk in entry.chunks)
    tree.close()
    assert data == RELEASE_FILES[LIB]
