"""``vml release`` end to end in a subprocess: add a source, list, mount, read, log, unmount, errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vmlog.errors import NotFound
from vmlog.releases.errors import SignatureError


def vml(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], capture_output=True, text=True, timeout=120, env=os.environ
    )
    if check and result.returncode != 0:
        raise AssertionError(f"vml {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


@pytest.mark.skipif(shutil.which("fusermount3") is None, reason="needs fuse3")
def test_release_commands(cvmfs_repo, server, vmlog_home, tmp_path):
    key = tmp_path / "sw.example.org.pub"
    key.write_text(cvmfs_repo.master_public_pem())
    url = f"{server.url}/cvmfs/{cvmfs_repo.name}"
    vml(
        "release", "source", "add", url, "--key", str(key), "--pattern", "sw/software/{series}/{release}", "--proxy", ""
    )

    available = json.loads(vml("release", "list", "--available", "--json").stdout)
    assert [(r["name"], r["revision"], r["tag"]) for r in available] == [
        ("24.0.1", 7, "prod-2024"),
        ("24.0.3", 7, "prod-2024"),
        ("25.1.0", 7, "prod-2024"),
    ]

    mountpoint = tmp_path / "mnt"
    mounted = vml("release", "mount", "24.0.3", "--at", str(mountpoint), "--cache-size", "64M")
    try:
        assert mounted.stdout.strip() == str(mountpoint)
        assert (mountpoint / "share/README").read_text() == "Physics release 24.0.3\n"
        running = json.loads(vml("release", "list", "--running", "--json").stdout)
        assert [(m["name"], m["revision"]) for m in running] == [("24.0.3", 7)]
        assert "mounting 24.0.3 revision 7" in vml("release", "log", "24.0.3").stdout
    finally:
        vml("release", "umount", "24.0.3")
    assert not os.path.ismount(mountpoint)
    assert json.loads(vml("release", "list", "--running", "--json").stdout) == []

    cvmfs_repo.write_whitelist(expires=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    refused = vml("release", "mount", "24.0.3", "--at", str(mountpoint), check=False)
    assert refused.returncode == SignatureError.exit_code
    assert "expired" in refused.stderr and "fix:" in refused.stderr


def test_cvmfs_source_needs_a_key(vmlog_home):
    result = vml("release", "source", "add", "http://127.0.0.1:9/cvmfs/x.org", check=False)
    assert result.returncode == 2
    assert "master public key" in result.stderr


def test_unknown_mount_is_reported(vmlog_home):
    result = vml("release", "umount", "nothing", check=False)
    assert result.returncode == NotFound.exit_code and "not mounted" in result.stderr
    assert not Path(vmlog_home, "run", "releases", "mounts", "nothing.json").exists()
