"""What the guest is given: shared-folder entries and a pinned CernVM-FS client configuration."""

from __future__ import annotations

from pathlib import Path

from vmlog.releases import CvmfsSource, MountHandle, Release
from vmlog.releases.guest_share import cvmfs_client_files, guest_mount_command, share_tag, shared_folder


def handle(name: str = "24.0.3") -> MountHandle:
    release = Release(name, 7, "prod", "http://s/cvmfs/sw.example.org", f"sw/{name}", "ab" * 20)
    return MountHandle(name, release, {}, Path("/run/m") / name, Path("/c"), 1, Path("/l"), 1)


def test_shared_folder_is_read_only_with_a_short_tag():
    folder = shared_folder(handle("a" * 80))
    assert folder.readonly and folder.host_path == Path("/run/m") / ("a" * 80)
    assert len(folder.tag) <= 36 and folder.tag == share_tag("a" * 80)
    assert (
        guest_mount_command(handle())
        == "mkdir -p /cvmfs-releases/24.0.3 && mount -t virtiofs -o ro rel-24.0.3 /cvmfs-releases/24.0.3"
    )


def test_cvmfs_client_is_pinned_to_the_same_root_catalog(cvmfs_repo, server, tmp_path):
    source = CvmfsSource(
        f"{server.url}/cvmfs/{cvmfs_repo.name}",
        cvmfs_repo.master_public_pem(),
        pattern="sw/software/{series}/{release}",
        proxy="",
    )
    release = source.resolve("24.0.3", tmp_path / "cache")
    files = cvmfs_client_files(source, release, proxy="http://squid:3128")
    config = files[f"/etc/cvmfs/config.d/{cvmfs_repo.name}.local"]
    assert f"CVMFS_ROOT_HASH={release.pin}\n" in config
    assert f"CVMFS_SERVER_URL={server.url}/cvmfs/@fqrn@\n" in config
    assert "CVMFS_HTTP_PROXY=http://squid:3128" in files["/etc/cvmfs/default.d/60-vmlog.conf"]
    assert files[f"/etc/cvmfs/keys/vmlog/{cvmfs_repo.name}.pub"] == cvmfs_repo.master_public_pem()
