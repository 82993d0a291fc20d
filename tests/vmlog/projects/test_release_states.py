"""A project's release mounts: recorded with exact revisions in states, re-mounted on restore (real FUSE + HTTP)."""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pycdlib
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "releases"))
from release_repos import CvmfsRepoBuilder, ServedDirectory  # noqa: E402

from vmlog.app import projects, states
from vmlog.app import releases as app_releases
from vmlog.context.model import Context  # noqa: E402
from vmlog.context.seed import write_seed  # noqa: E402
from vmlog.errors import InvalidInput  # noqa: E402
from vmlog.projects import releases as project_releases  # noqa: E402
from vmlog.projects.model import State  # noqa: E402
from vmlog.releases import CvmfsSource, mounts, running_mounts, umount  # noqa: E402
from vmlog.releases.sources import add_source  # noqa: E402

LIB = bytes(range(256)) * 600
README = b"Physics release 24.0.3\n"
needs_fuse = pytest.mark.skipif(
    not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None, reason="needs /dev/fuse and fuse3"
)


def publish(root: Path) -> CvmfsRepoBuilder:
    builder = CvmfsRepoBuilder(root)
    builder.add_dir("sw/software/24.0", nested=True)
    builder.add_file("sw/software/24.0/24.0.3/lib/libphysics.so", LIB, chunk_size=64 * 1024)
    builder.add_file("sw/software/24.0/24.0.3/share/README", README)
    builder.publish(7, "prod-2024")
    return builder


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[CvmfsRepoBuilder, ServedDirectory]]:
    builder = publish(tmp_path / "www")
    server = ServedDirectory(tmp_path / "www")
    yield builder, server
    try:
        server.stop()
    except OSError:
        pass


@pytest.fixture
def source(served, vmlog_home) -> Iterator[CvmfsSource]:
    builder, server = served
    src = CvmfsSource(
        f"{server.url}/cvmfs/{builder.name}",
        builder.master_public_pem(),
        pattern="sw/software/{series}/{release}",
        proxy="",
    )
    add_source(src)
    yield src
    for handle in running_mounts():
        umount(handle.name, project=handle.project, lazy=True)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_fuse
def test_state_records_release_revision_and_restore_mounts_it_again(ctx, project_files, source, served):
    outcome = app_releases.mount_in_project("alpha", "24.0.3", ctx=ctx)
    assert outcome.guest == "next boot"  # the VM was never started: shared when it boots
    project = project_files.load()
    (share,) = project.spec["shared_folders"]
    host = Path(share["host_path"])
    assert share["tag"] == "rel-24.0.3"
    assert digest(host / "lib/libphysics.so") == hashlib.sha256(LIB).hexdigest()
    (handle,) = running_mounts(project="alpha")
    assert handle.project == "alpha" and handle.mountpoint == host

    state = states.save_state("alpha", "with-release", ctx=ctx)
    (recorded,) = state.release_mounts
    assert recorded["release"]["revision"] == 7
    assert recorded["release"]["pin"] == handle.release.pin
    assert recorded["guest_path"] == "/cvmfs-releases/24.0.3"
    assert states.show_state("alpha", "with-release", ctx=ctx)["release_mounts"] == [recorded]

    app_releases.umount_in_project("alpha", "24.0.3", ctx=ctx)
    assert running_mounts(project="alpha") == []
    assert project_files.load().spec["shared_folders"] == []
    states.save_state("alpha", "without", ctx=ctx)
    assert states.show_state("alpha", "without", ctx=ctx)["release_mounts"] == []

    result = states.restore_state("alpha", "with-release", ctx=ctx)
    assert result["releases"]["warnings"] == []
    (again,) = running_mounts(project="alpha")
    assert again.release.pin == handle.release.pin and again.release.revision == 7
    assert (again.mountpoint / "share/README").read_bytes() == README
    assert project_files.load().spec["shared_folders"][0]["host_path"] == str(again.mountpoint)

    # the server goes away: the cached revision still mounts and reads
    served[1].stop()
    states.restore_state("alpha", "without", ctx=ctx)
    assert running_mounts(project="alpha") == []
    result = states.restore_state("alpha", "with-release", ctx=ctx)
    assert result["releases"]["warnings"] == []
    (offline,) = running_mounts(project="alpha")
    assert digest(offline.mountpoint / "lib/libphysics.so") == hashlib.sha256(LIB).hexdigest()


@needs_fuse
def test_two_projects_mount_the_same_release_separately(ctx, project_files, base_image, source):
    projects.new_project("beta", str(base_image), ctx=ctx)
    app_releases.mount_in_project("alpha", "24.0.3", ctx=ctx)
    app_releases.mount_in_project("beta", "24.0.3", ctx=ctx)
    owners = sorted(h.project for h in running_mounts())
    assert owners == ["alpha", "beta"]
    app_releases.umount_in_project("alpha", "24.0.3", ctx=ctx)
    assert [h.project for h in running_mounts()] == ["beta"]


@needs_fuse
def test_restore_without_the_source_warns_with_the_needed_revision(ctx, project_files, source):
    app_releases.mount_in_project("alpha", "24.0.3", ctx=ctx)
    state = states.save_state("alpha", "s1", ctx=ctx)
    app_releases.umount_in_project("alpha", "24.0.3", ctx=ctx)
    from vmlog.releases.sources import remove_source

    remove_source(source.name)
    result = states.restore_state("alpha", state.id, ctx=ctx)
    (warning,) = result["releases"]["warnings"]
    assert "24.0.3 revision 7" in warning and source.url in warning and "vml release source add" in warning
    assert running_mounts(project="alpha") == []


def test_release_records_round_trip_and_bad_ones_are_skipped():
    item = project_releases.ProjectRelease.from_dict(
        {
            "name": "24.0.3",
            "release": {"name": "24.0.3", "revision": 7, "tag": "t", "source_url": "http://x/cvmfs/r",
                        "path": "sw/24.0.3", "pin": "ab" * 20},  # fmt: skip
            "source": {"kind": "cvmfs", "url": "http://x/cvmfs/r"},
        }
    )
    assert item.guest == "share" and item.guest_path == "/cvmfs-releases/24.0.3"
    assert project_releases.ProjectRelease.from_dict(item.to_dict()) == item
    state = State("0" * 16, None, None, "", "me", 0.0, {}, {}, release_mounts=[item.to_dict(), {"name": 3}, {}])
    assert project_releases.state_releases(state) == [item]
    with pytest.raises(InvalidInput):
        project_releases.ProjectRelease.from_dict({"name": "x", "release": {}, "source": {}, "guest": "nfs"})


def test_memory_save_of_a_project_with_release_shares_is_refused_with_the_fix(ctx, project_files):
    project = project_files.load()
    project.spec["shared_folders"] = [{"tag": "rel-24.0.3", "host_path": "/tmp/x", "readonly": True}]
    project_files.write(project)
    with pytest.raises(InvalidInput) as caught:
        states.save_state("alpha", memory=True, ctx=ctx)  # refused before the VM is asked
    assert "virtiofs" in caught.value.message
    assert "vml release umount 24.0.3 --project alpha" in caught.value.fix
    assert "vml down alpha" in caught.value.fix
    assert states.states("alpha", ctx=ctx)[1] == {}


def _iso_text(path: Path, name: str) -> str:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        buffer = io.BytesIO()
        iso.get_file_from_iso_fp(buffer, rr_path=name)
        return buffer.getvalue().decode()
    finally:
        iso.close()


def test_cernvm_seed_carries_the_client_configuration_pinned_to_the_revision(tmp_path, served, vmlog_home):
    builder, server = served
    src = CvmfsSource(
        f"{server.url}/cvmfs/{builder.name}", builder.master_public_pem(), pattern="sw/software/{series}/{release}"
    )
    release = src.resolve("24.0.3", mounts.default_cache_dir())
    item = project_releases.ProjectRelease(release.name, release, src.to_config(), "cvmfs")
    assert item.guest_path == f"/cvmfs/{builder.name}/sw/software/24.0/24.0.3"
    context = project_releases.cernvm_context(Context(hostname="ana", cvmfs_http_proxy="http://squid:3128"), [item])
    seed = write_seed("cernvm", context, tmp_path / "seed.iso")
    user_data = _iso_text(seed, "/openstack/latest/user_data")
    assert f"CVMFS_ROOT_HASH={release.pin}" in user_data
    assert "# revision 7 (prod-2024), pinned by vmlog" in user_data
    assert f"repositories={builder.name}" in user_data
    assert "CVMFS_HTTP_PROXY=http://squid:3128" in user_data
    assert "BEGIN PUBLIC KEY" in user_data
    meta = _iso_text(seed, "/openstack/latest/meta_data.json")
    assert "vmlog-ana-rel-" in meta  # a new pin is a new instance: cloud-init writes the files again
