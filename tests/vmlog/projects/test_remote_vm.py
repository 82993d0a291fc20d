"""A project on a libvirt host reached over SSH, through the CLI: new --uri, up, save, restore, export, import, rm.

The host is this machine's daemon behind an sshd of the test's own (``qemu+ssh://root@127.0.0.1:PORT/system``);
the project's disks are volumes of the home's pool there, which the test reads only through libvirt. One boot.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import vml

from hypervisors.libvirt import connection, remote_pool
from tests.hypervisors.libvirt.remote.sshd_host import RemoteHost, remote_host  # noqa: F401 - the fixture
from tests.hypervisors.libvirt.remote.test_remote_boot_vm import BOOT_DEADLINE, _console_lines
from vmlog.context.readiness import free_tcp_port
from vmlog.projects import remote_ssh

pytestmark = pytest.mark.vm
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def homes(remote_host: RemoteHost) -> Iterator[tuple[Path, Path]]:  # noqa: F811
    """Two vmlog homes in a short temp dir; every project left in them and the pools they made go afterwards."""
    root = Path(tempfile.mkdtemp(prefix="vmlr-"))
    yield root / "a", root / "b"
    libvirt = connection.import_libvirt()
    for home in (root / "a", root / "b"):
        for row in json.loads(vml(home, "project", "list", "--json").stdout or "[]"):
            vml(home, "project", "rm", row["name"], "--yes")
        id_file = home / "data" / "home-id"
        if id_file.is_file():
            conn = libvirt.open(remote_host.uri)
            try:
                remote_pool.remove_pool(conn, remote_pool.pool_name(id_file.read_text().strip()))
            finally:
                conn.close()
    shutil.rmtree(root, ignore_errors=True)


def _ok(result: object) -> str:
    assert result.returncode == 0, result.stderr + result.stdout  # type: ignore[attr-defined]
    return str(result.stdout)  # type: ignore[attr-defined]


def _pool_volumes(uri: str, home: Path) -> list[str]:
    home_id = (home / "data" / "home-id").read_text().strip()
    libvirt = connection.import_libvirt()
    conn = libvirt.open(uri)
    try:
        pool = remote_pool.find_pool(conn, remote_pool.pool_name(home_id))
        if pool is None:
            return []
        pool.refresh(0)
        return sorted(vol.name() for vol in pool.listAllVolumes(0))
    finally:
        conn.close()


def _volume_capacity(uri: str, project: str, home: Path) -> int:
    """The capacity the host reports for the live volume of ``project``'s system disk."""
    live = json.loads(_ok(vml(home, "project", "show", project, "--json")))["live"]["system"]
    home_id = (home / "data" / "home-id").read_text().strip()
    conn = connection.import_libvirt().open(uri)
    try:
        pool = remote_pool.find_pool(conn, remote_pool.pool_name(home_id))
        assert pool is not None
        return int(pool.storageVolLookupByName(live).info()[1])
    finally:
        conn.close()


def _wait_for_ready(uri: str, vm: str) -> None:
    lines: queue.Queue[str] = queue.Queue()
    close = _console_lines(uri, vm, lines)
    seen: list[str] = []
    deadline = time.monotonic() + BOOT_DEADLINE
    try:
        while not any("VMLOG-READY" in line for line in seen):
            try:
                seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"no VMLOG-READY on the console within {BOOT_DEADLINE:g} s: {seen[-20:]}")
    finally:
        close()


def test_a_project_lives_on_a_remote_host(remote_host: RemoteHost, homes: tuple[Path, Path],  # noqa: F811
                                         test_appliance_image: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    home, other = homes
    uri = remote_host.uri
    _ok(vml(home, "project", "new", "far", str(test_appliance_image), "--uri", uri, "--accel", "tcg",
            "--memory", "128"))
    shown = json.loads(_ok(vml(home, "project", "show", "far", "--json")))
    assert shown["uri"] == uri and shown["storage_owner"]
    listed = json.loads(_ok(vml(home, "project", "list", "--json")))
    assert [row["uri"] for row in listed] == [uri]
    volumes = _pool_volumes(uri, home)
    assert any(v.startswith("base-") for v in volumes) and shown["live"]["system"] in volumes
    assert not (home / "data" / "projects" / "far" / "layers").exists()  # no local layer file, ever

    _ok(vml(home, "up", "far"))
    _wait_for_ready(uri, shown["vm_name"])
    _ok(vml(home, "state", "save", "running", "-p", "far"))  # the VM moves onto a new volume as it runs
    running = json.loads(_ok(vml(home, "project", "show", "far", "--json")))
    assert running["live"]["system"] != shown["live"]["system"] and running["vm_state"] == "running"
    refused = vml(home, "state", "save", "memory", "--with-memory", "-p", "far")
    assert refused.returncode == 22 and "vml down far --save" in refused.stderr
    _ok(vml(home, "down", "far", "--poweroff"))
    _ok(vml(home, "state", "save", "booted", "-p", "far"))
    assert "on host" in _ok(vml(home, "project", "list"))  # its disk use is not counted here
    refused = vml(home, "project", "archive", "far", "-o", str(tmp_path / "far.vmlarchive"))
    assert refused.returncode == 22 and "vml state export" in refused.stderr
    after = json.loads(_ok(vml(home, "project", "show", "far", "--json")))
    assert after["live"]["system"] in _pool_volumes(uri, home) and not after["unsaved_changes"]
    _ok(vml(home, "state", "restore", "booted", "-p", "far"))

    out = tmp_path / "bundles"
    out.mkdir()
    _ok(vml(home, "state", "export", "booted", "-p", "far", "-o", str(out)))
    (bundle,) = out.glob("*.vmlstate")
    _ok(vml(other, "state", "import", str(bundle), "--trust", "--project", "near", "--base", str(test_appliance_image)))
    near = json.loads(_ok(vml(other, "project", "show", "near", "--json")))
    assert "uri" not in near and near["states"] == 1
    _ok(vml(home, "state", "import", str(bundle), "--trust", "--project", "copy", "--uri", uri))
    copy = json.loads(_ok(vml(home, "project", "show", "copy", "--json")))
    assert copy["uri"] == uri and copy["live"]["system"] in _pool_volumes(uri, home)

    # the live volume grows on the host (after the export: a bundle carries only disks of the base's size)
    size = json.loads(_ok(vml(home, "project", "set", "far", "--json")))["disk_sizes"]["system"]
    grown = json.loads(_ok(vml(home, "project", "set", "far", "--disk-size", str(size + MIB), "--json")))
    assert grown["settings"]["disk_sizes"]["system"] == size + MIB
    assert _volume_capacity(uri, "far", home) == size + MIB
    rows = [row for row in json.loads(_ok(vml(home, "log", "far", "--json"))) if row.get("kind") == "operation"]
    assert len(rows) >= 6 and {row["vm_host"] for row in rows} == {uri}  # the logbook here names the host
    for name in ("copy", "far"):
        _ok(vml(home, "project", "rm", name, "--yes"))
    assert _pool_volumes(uri, home) == []
    print(f"remote project new, boot, save, restore, export, import, grow, rm: {time.monotonic() - started:.0f} s")



def test_vml_ssh_reaches_a_port_of_the_host_through_it(remote_host: RemoteHost, tmp_path: Path) -> None:  # noqa: F811
    """What `vml ssh` runs, against the real sshd: the port reached through the host is that sshd's own."""
    assert (remote_ssh.guest_banner(remote_host.uri, remote_host.port) or "").startswith("SSH-")
    assert remote_ssh.guest_banner(remote_host.uri, free_tcp_port(), timeout=5) is None  # nothing listens there
    login = subprocess.run(
        ["ssh", *remote_ssh.proxy_options(remote_host.uri), "-p", str(remote_host.port), "-i", str(remote_host.keyfile),
         "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'known'}",
         "root@127.0.0.1", "echo", "through"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert login.returncode == 0 and login.stdout.strip() == "through", login.stderr
