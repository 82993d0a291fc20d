"""CernVM-FS details read as the cvmfs client reads them: hash algorithms, whitelist rules, entry kinds."""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import stat
from pathlib import Path

import pytest
from release_repos import CvmfsRepoBuilder, ServedDirectory

from vmlog.releases import CvmfsSource, mount_release, running_mounts, umount
from vmlog.releases.errors import SignatureError
from vmlog.releases.signed_letter import (
    Whitelist,
    certificate_fingerprint,
    fingerprint_of_line,
    load_master_keys,
    verify_whitelist,
)

needs_fuse = pytest.mark.skipif(
    not Path("/dev/fuse").exists() or shutil.which("fusermount3") is None, reason="needs /dev/fuse and fuse3"
)


@pytest.fixture
def cleanup(vmlog_home):
    yield
    for handle in running_mounts():
        umount(handle.name)


def _repo(tmp_path: Path, algorithm: str = "sha1") -> CvmfsRepoBuilder:
    builder = CvmfsRepoBuilder(tmp_path / "www", algorithm=algorithm)
    builder.add_dir("sw/1.0", nested=True)
    builder.add_file("sw/1.0/README", b"release one\n")
    builder.add_file("sw/1.0/lib.so", bytes(range(256)) * 400, chunk_size=32 * 1024)
    builder.add_link("sw/1.0/latest", "README")
    builder.add_file("sw/1.0/.hidden", b"not listed\n", hidden=True)
    builder.add_bind_mountpoint("sw/1.0/bound")
    builder.add_special("sw/1.0/pipe", stat.S_IFIFO | 0o644)
    builder.add_special("sw/1.0/null", stat.S_IFCHR | 0o666, rdev=os.makedev(1, 3))
    builder.add_file("sw/1.0/external.dat", b"outside\n", external=True)
    builder.publish(3)
    return builder


def _source(builder: CvmfsRepoBuilder, server: ServedDirectory) -> CvmfsSource:
    return CvmfsSource(f"{server.url}/cvmfs/{builder.name}", builder.master_public_pem(), pattern="sw/{release}",
                       proxy="")


@pytest.mark.parametrize("algorithm", ["rmd160", "shake128"])
def test_fingerprint_line_in_the_repository_algorithm(tmp_path, algorithm):
    builder = _repo(tmp_path, algorithm)
    line = builder.fingerprint()
    assert line.endswith("-" + algorithm.upper()) and line.count(":") == 19
    parsed = fingerprint_of_line(line + "  # repository key")
    assert parsed is not None and parsed.algorithm == algorithm
    assert certificate_fingerprint(builder.certificate, algorithm) == line
    whitelist = Whitelist.parse((builder.root / ".cvmfswhitelist").read_bytes())
    assert [p.algorithm for p in whitelist.fingerprints] == [algorithm]


@needs_fuse
@pytest.mark.parametrize("algorithm", ["rmd160", "shake128"])
def test_non_sha1_repository_mounts_and_reads(tmp_path, cleanup, algorithm):
    builder = _repo(tmp_path, algorithm)
    server = ServedDirectory(tmp_path / "www")
    try:
        mount_release(_source(builder, server), "1.0", at=tmp_path / "mnt")
        mnt = tmp_path / "mnt"
        assert (mnt / "README").read_bytes() == b"release one\n"
        assert (mnt / "lib.so").read_bytes() == bytes(range(256)) * 400
        assert os.readlink(mnt / "latest") == "README"
        listed = sorted(os.listdir(mnt))
        assert listed == ["README", "external.dat", "latest", "lib.so", "null", "pipe"]  # no hidden, no bind
        assert (mnt / ".hidden").read_bytes() == b"not listed\n"  # hidden from listings, still there
        assert stat.S_ISFIFO(os.lstat(mnt / "pipe").st_mode)
        device = os.lstat(mnt / "null")
        assert stat.S_ISCHR(device.st_mode) and device.st_rdev == os.makedev(1, 3)
        assert os.stat(mnt / "README").st_mtime_ns % 1_000_000_000 == builder.mtime_ns
        with pytest.raises(OSError) as refused:
            (mnt / "external.dat").read_bytes()
        assert refused.value.errno == errno.EOPNOTSUPP
        log = next(h for h in running_mounts()).log_file.read_text()
        assert "external file" in log
    finally:
        server.stop()


def test_whitelist_expires_at_the_start_of_its_expiry_hour(tmp_path):
    builder = _repo(tmp_path)
    soon = dt.datetime.now(dt.UTC).replace(minute=59, second=0, microsecond=0)
    builder.write_whitelist(expires=soon)  # this hour: cvmfs already rejects it
    whitelist = Whitelist.parse((builder.root / ".cvmfswhitelist").read_bytes())
    assert whitelist.expires == soon.replace(minute=0)
    keys = load_master_keys(builder.master_public_pem().encode())
    with pytest.raises(SignatureError, match="expired"):
        verify_whitelist(whitelist, keys, builder.name)
    verify_whitelist(whitelist, keys, builder.name, now=soon.replace(minute=0) - dt.timedelta(seconds=1))


def test_whitelist_without_repository_name_is_refused(tmp_path):
    builder = _repo(tmp_path)
    builder.write_whitelist(name_line=False)
    with pytest.raises(SignatureError, match="names no repository"):
        Whitelist.parse((builder.root / ".cvmfswhitelist").read_bytes())
