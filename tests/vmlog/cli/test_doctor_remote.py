"""``vml doctor --uri``: a host reached over qemu+ssh is checked and reported, in words and in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hypervisors.libvirt.remote.sshd_host import RemoteHost, remote_host  # noqa: F401 - the fixture

pytestmark = pytest.mark.vm  # a real daemon behind a real sshd (no guest boots here)


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmlog.cli.main", "doctor", *args], capture_output=True,
                          text=True, check=False, timeout=300, env=dict(os.environ))


def test_a_reachable_host_passes_and_says_what_runs_there(remote_host: RemoteHost, vmlog_home: Path) -> None:  # noqa: F811
    proc = doctor("--uri", remote_host.uri, "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], proc.stdout + proc.stderr
    assert report["uri"] == remote_host.uri
    text = doctor("--uri", remote_host.uri).stdout
    assert "libvirt 9." in text or "libvirt 1" in text


def test_the_report_has_kvm_and_this_homes_pool(remote_host: RemoteHost, vmlog_home: Path) -> None:  # noqa: F811
    report = json.loads(doctor("--uri", remote_host.uri, "--json").stdout)
    names = [check["name"] for check in report["checks"]]
    assert names == ["connect", "versions", "kvm", "pool"]
    assert "not made yet" in report["checks"][3]["summary"]


def test_an_unknown_key_fails_with_the_fix(remote_host: RemoteHost, vmlog_home: Path, tmp_path: Path) -> None:  # noqa: F811
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=60)
    proc = doctor("--uri", remote_host.uri.replace(str(remote_host.keyfile), str(stranger)))
    assert proc.returncode == 1
    assert "Permission denied (publickey)" in proc.stdout and "fix: the host did not accept your SSH key" in proc.stdout
