"""Mount releases for real with FUSE: lazy reads, digest checks, offline cache, log, unmount."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from release_repos import RELEASE_FILES, ServedDirectory

from vmlog.releases import CvmfsSource, HttpTreeSource, mount_release, running_mounts, umount
from vmlog.releases.errors import SignatureError

pytestmark = pytest.mark.skipif(
    not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None, reason="needs /dev/fuse and fuse3"
)


@pytest.fixture
def cvmfs_source(cvmfs_repo, server) -> CvmfsSource:
    return CvmfsSource(
        f"{server.url}/cvmfs/{cvmfs_repo.name}",
        cvmfs_repo.master_public_pem(),
        pattern="sw/software/{series}/{release}",
        proxy="",
    )


@pytest.fixture
def cleanup(vmlog_home):
    yield
    for handle in running_mounts():
        umount(handle.name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mount_read_tamper_offline_umount(cvmfs_repo, server: ServedDirectory, cvmfs_source, cleanup, tmp_path):
    handle = mount_release(cvmfs_source, "24.0.3", at=tmp_path / "mnt")
    assert os.path.ismount(tmp_path / "mnt")
    assert [h.name for h in running_mounts()] == ["24.0.3"]
    assert (handle.release.revision, handle.release.tag) == (7, "prod-2024")
    assert sorted(os.listdir(tmp_path / "mnt")) == ["bin", "lib", "share"]
    library = tmp_path / "mnt/lib/libphysics.so"
    assert sha256(library) == hashlib.sha256(RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]).hexdigest()
    assert os.readlink(tmp_path / "mnt/bin/latest") == "setup.sh"
    with pytest.raises(OSError) as denied:
        (tmp_path / "mnt/share/new").write_text("x")
    assert denied.value.errno in (errno.EROFS, errno.EACCES)

    cvmfs_repo.tamper("sw/software/24.0/24.0.3/bin/setup.sh", b"#!/bin/sh\nrm -rf ~\n")
    with pytest.raises(OSError) as failed:
        (tmp_path / "mnt/bin/setup.sh").read_bytes()
    assert failed.value.errno == errno.EIO
    assert "digest mismatch" in handle.log_file.read_text()

    server.stop()  # cached files still read; uncached ones fail cleanly
    assert sha256(library) == hashlib.sha256(RELEASE_FILES["24.0/24.0.3/lib/libphysics.so"]).hexdigest()
    with pytest.raises(OSError) as offline:
        (tmp_path / "mnt/share/README").read_bytes()
    assert offline.value.errno == errno.EIO

    umount("24.0.3")
    assert not os.path.ismount(tmp_path / "mnt")
    assert running_mounts() == []


def test_cached_release_mounts_and_reads_with_server_stopped(cvmfs_repo, server, cvmfs_source, cleanup, tmp_path):
    handle = mount_release(cvmfs_source, "25.1.0", at=tmp_path / "mnt")
    assert (tmp_path / "mnt/share/README").read_bytes() == b"Physics release 25.1.0\n"
    umount(handle.name)
    server.stop()
    again = mount_release(cvmfs_source, "25.1.0", at=tmp_path / "mnt", revision=7, pin=handle.release.pin)
    assert again.release.pin == handle.release.pin
    assert (tmp_path / "mnt/share/README").read_bytes() == b"Physics release 25.1.0\n"
    assert "mounting 25.1.0 revision 7" in again.log_file.read_text()


def test_bad_signature_refuses_to_mount(cvmfs_repo, server, cvmfs_source, cleanup, tmp_path):
    manifest = cvmfs_repo.root / ".cvmfspublished"
    data = bytearray(manifest.read_bytes())
    data[-5] ^= 0xFF  # flip a bit of the RSA signature
    manifest.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="bad signature"):
        mount_release(cvmfs_source, "24.0.3", at=tmp_path / "mnt")
    assert not os.path.ismount(tmp_path / "mnt")


def test_http_tree_release_mounts(tree_repo, server, cleanup, tmp_path):
    source = HttpTreeSource(f"{server.url}/tree", pattern="releases/{series}/{release}", proxy="")
    handle = mount_release(source, "24.0.3", at=tmp_path / "mnt", cache_limit=10 << 20)
    assert (tmp_path / "mnt/share/README").read_bytes() == b"Physics release 24.0.3\n"
    assert (handle.release.revision, handle.release.tag) == (3, "june")
