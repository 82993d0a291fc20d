"""The remote-host fixture skips with the reason when its sshd cannot serve, instead of hanging or failing."""

from __future__ import annotations

import subprocess

from tests.hypervisors.libvirt.remote import sshd_host


def test_an_sshd_that_exits_is_reported_with_its_status() -> None:
    proc = subprocess.Popen(["sh", "-c", "exit 3"])
    assert sshd_host._wait_for_port(sshd_host._free_port(), proc, timeout=10) == "sshd exited with status 3"


def test_an_sshd_that_never_listens_is_reported_within_the_timeout() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        problem = sshd_host._wait_for_port(sshd_host._free_port(), proc, timeout=0.5)
    finally:
        proc.kill()
        proc.wait()
    assert problem is not None and "did not listen on 127.0.0.1" in problem


def test_the_config_lets_root_in_by_key_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = sshd_host._sshd_config(tmp_path, 2222).read_text()
    assert "PermitRootLogin prohibit-password" in text and "PasswordAuthentication no" in text
    assert f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}" in text and "UsePAM no" in text
    assert f"PidFile {tmp_path / 'sshd.pid'}" in text and "ListenAddress 127.0.0.1" in text
