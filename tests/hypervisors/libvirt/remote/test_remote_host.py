"""Checking a host over qemu+ssh: versions, KVM and vmlog's pool; a failed connection names its fix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hypervisors.libvirt import connection, remote_host, remote_pool
from hypervisors.libvirt.remote_storage import RemoteStorage
from tests.hypervisors.libvirt.remote.sshd_host import RemoteHost

pytestmark = pytest.mark.vm  # a real daemon behind a real sshd (no guest boots here)


def _by_name(checks: list) -> dict:  # type: ignore[type-arg]
    return {check.name: check for check in checks}


def remote_host_checks(uri: str, owner: str) -> list:  # type: ignore[type-arg]
    return remote_host.check_host(uri, owner)


def test_a_reachable_host_reports_versions_kvm_and_a_pool_not_made_yet(remote_host: RemoteHost) -> None:
    checks = _by_name(remote_host_checks(remote_host.uri, "never-used-home"))
    assert [c.name for c in checks.values()] == ["connect", "versions", "kvm", "pool"]
    assert all(c.ok for c in checks.values()), checks
    assert checks["versions"].details["libvirt"].startswith(("9.", "1"))
    assert checks["versions"].details["driver"] == "QEMU"
    assert checks["kvm"].details["accelerator"] in ("kvm", "tcg")
    assert "not made yet" in checks["pool"].summary
    conn = connection.open_connection(connection.import_libvirt(), remote_host.uri)
    try:
        assert remote_pool.find_pool(conn, remote_pool.pool_name("never-used-home")) is None  # a check makes nothing
    finally:
        conn.close()


def test_an_existing_pool_reports_its_free_space(remote_host: RemoteHost) -> None:
    libvirt = connection.import_libvirt()
    conn = connection.open_connection(libvirt, remote_host.uri)
    name = remote_pool.pool_name("home-with-a-pool")
    RemoteStorage(conn, name, f"{remote_pool.SYSTEM_POOLS_DIR}/{name}")
    try:
        pool = _by_name(remote_host_checks(remote_host.uri, "home-with-a-pool"))["pool"]
        assert pool.details["pool"] == name and pool.details["directory"].endswith(name)
        assert "GiB free of" in pool.summary
    finally:
        remote_pool.remove_pool(conn, name)
        conn.close()


def test_a_key_the_host_does_not_know_is_named_as_the_cause(remote_host: RemoteHost, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=60)
    [check] = remote_host_checks(remote_host.uri.replace(str(remote_host.keyfile), str(stranger)), "x")
    assert not check.ok and "Permission denied (publickey)" in check.summary
    assert check.fix is not None and "ssh-copy-id" in check.fix and f"-p {remote_host.port}" in check.fix


def test_no_netcat_on_the_host_is_named_as_the_cause(remote_host: RemoteHost) -> None:
    if remote_host.ssh("command -v nc").returncode == 0:
        pytest.skip("nc is installed on this host: nothing to miss")
    [check] = remote_host_checks(remote_host.uri + "&proxy=netcat", "x")
    assert not check.ok and "nc: not found" in check.summary
    assert check.fix is not None and "netcat-openbsd" in check.fix and "proxy=native" in check.fix


def test_no_ssh_server_is_named_as_the_cause(remote_host: RemoteHost) -> None:
    uri = remote_host.uri.replace(f":{remote_host.port}/", ":1/")
    [check] = remote_host_checks(uri, "x")
    assert not check.ok and check.fix is not None and "no SSH server answers" in check.fix
