"""``setup``: from an empty store to a running, seeded guest, through a catalog on a real HTTP server.

The fast tests cover the seed disks, the readiness probes and the runs that must leave nothing
behind (bad digest, cancel). The ``vm`` tests boot the test appliance under libvirt.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pycdlib
import pytest

from vmlog.app import projects, running
from vmlog.context.model import Context, ExtraFile
from vmlog.context.project_setup import hostname_for
from vmlog.context.readiness import free_tcp_port, ssh_banner
from vmlog.context.seed import build_config_drive, write_seed
from vmlog.context.userdata import CERNVM_ISO_LABEL
from vmlog.errors import AlreadyExists, Cancelled, IntegrityError
from vmlog.setup import PHASES, SetupEvent, setup, ssh_access
from vmlog.testappliance.agent import GuestChannel
from vmlog.testappliance.build import appliance_metadata
from vmlog.workspace import Workspace

APPLIANCE = "seeded-test"  # not the built-in name: setup must learn about the agent from the catalog


# -- helpers ---------------------------------------------------------------------------------------


def _iso_file(path: Path, **where: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, **where)
        return out.getvalue()
    finally:
        iso.close()


def _iso_label(path: Path) -> str:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        return iso.pvd.volume_identifier.decode().strip()
    finally:
        iso.close()


THROTTLE = {"seconds_per_mib": 0.0}  # a slow server, for tests that must act in the middle of a download


@pytest.fixture
def served_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served by the standard library's HTTP server on 127.0.0.1 (no Range support)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
            while chunk := source.read(1 << 20):
                outputfile.write(chunk)
                time.sleep(THROTTLE["seconds_per_mib"])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _catalog(root: Path, base_url: str, image: Path, *, sha256: str, size: int, name: str = APPLIANCE) -> str:
    """Serve ``image`` and a vmlog catalog offering it; return the catalog URL."""
    served = root / "appliance.raw"
    if not served.exists():
        served.symlink_to(image)
    doc = {
        "vmlog_catalog": 1,
        "appliances": [
            {
                "name": name,
                "title": "test appliance served for setup",
                "versions": [
                    {
                        "version": "1.0",
                        "min_memory_mib": 256,
                        "context": "nocloud",
                        "boot": {"agent": "vmlog", "ssh": False},
                        "images": {
                            "raw": {
                                "urls": [f"{base_url}/appliance.raw"],
                                "size": size,
                                "digest": {"sha256": sha256},
                            }
                        },
                    }
                ],
            }
        ],
    }
    (root / "catalog.json").write_text(json.dumps(doc))
    return f"{base_url}/catalog.json"


def _ctx_with_catalog(url: str) -> Workspace:
    from vmlog.appliances.catalog import Catalogs

    ctx = Workspace.default()
    Catalogs(ctx.home.config).add(url, name="served")
    return ctx


@pytest.fixture
def short_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty VMLOG_HOME with a short path: the agent socket path must fit a Unix socket's 107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="vml-", dir="/tmp"))
    monkeypatch.setenv("VMLOG_HOME", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)



# -- seeds -----------------------------------------------------------------------------------------


def test_nocloud_seed_carries_hostname_and_user_data_files(tmp_path: Path) -> None:
    context = Context(hostname="alice-box", extra_files=(ExtraFile("/etc/motd", "hi there\n"),))
    seed = write_seed("nocloud", context, tmp_path / "seed.iso")
    assert _iso_label(seed) == "cidata"
    assert b'local-hostname: "alice-box"' in _iso_file(seed, rr_path="/meta-data")
    user_data = _iso_file(seed, rr_path="/user-data").decode()
    assert user_data.startswith("#cloud-config\n")
    assert 'path: "/etc/motd"' in user_data and 'content: "hi there\\n"' in user_data


def test_cernvm_config_drive_has_both_metadata_layouts(tmp_path: Path) -> None:
    context = Context(hostname="analysis-1", cvmfs_repositories=("sft.cern.ch",))
    drive = write_seed("cernvm", context, tmp_path / "config.iso")
    assert _iso_label(drive) == CERNVM_ISO_LABEL
    for path in ("/ec2/latest/user-data", "/openstack/latest/user_data"):
        user_data = _iso_file(drive, rr_path=path).decode()
        assert "[cernvm]" in user_data and "repositories=sft.cern.ch" in user_data
        assert _iso_file(drive, joliet_path=path) == user_data.encode()
    meta = json.loads(_iso_file(drive, rr_path="/openstack/latest/meta_data.json"))
    assert meta["hostname"] == "analysis-1"
    isoinfo = shutil.which("isoinfo")
    if isoinfo:  # the system's reader agrees on the Rock Ridge names
        listing = subprocess.run(
            [isoinfo, "-R", "-f", "-i", str(drive)], capture_output=True, text=True
        ).stdout
        assert "/ec2/latest/meta-data.json" in listing.splitlines()


def test_config_drive_refuses_paths_that_climb_out(tmp_path: Path) -> None:
    from vmlog.errors import InvalidInput

    with pytest.raises(InvalidInput):
        build_config_drive(tmp_path / "x.iso", {"../etc/passwd": b"x"})
    assert not (tmp_path / "x.iso").exists()


def test_hostnames_from_project_names() -> None:
    assert hostname_for("my_analysis.v2") == "my-analysis-v2"
    assert hostname_for("a" * 80) == "a" * 63
    Context(hostname=hostname_for("x_" * 40))  # always valid


# -- readiness probes ------------------------------------------------------------------------------


def _one_shot_server(reply: bytes) -> tuple[int, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_ssh_banner_tells_an_ssh_server_from_an_open_port() -> None:
    port, thread = _one_shot_server(b"SSH-2.0-OpenSSH_9.2 Debian\r\n")
    assert ssh_banner(port) == "SSH-2.0-OpenSSH_9.2 Debian"
    thread.join(5)
    port, thread = _one_shot_server(b"")  # accepts and closes, like a NAT forward with no sshd behind
    assert ssh_banner(port) is None
    thread.join(5)
    assert ssh_banner(free_tcp_port()) is None  # nothing listens


# -- runs that must leave nothing behind -----------------------------------------------------------


def test_a_bad_digest_leaves_no_image_and_no_project(
    vmlog_home: Path, served_dir: tuple[Path, str], test_appliance_image: Path, kvm_available: None
) -> None:
    root, base = served_dir
    meta = appliance_metadata(test_appliance_image)
    url = _catalog(
        root, base, test_appliance_image, sha256=hashlib.sha256(b"other").hexdigest(), size=meta["size"]
    )
    ctx = _ctx_with_catalog(url)
    with pytest.raises(IntegrityError):
        setup(APPLIANCE, name="bad", backend="kvm", ctx=ctx)
    assert ctx.projects.names() == []
    assert ctx.images.list() == []


def test_cancel_during_the_download_keeps_the_partial_file_and_creates_nothing(
    vmlog_home: Path,
    served_dir: tuple[Path, str],
    test_appliance_image: Path,
    kvm_available: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(THROTTLE, "seconds_per_mib", 0.02)  # progress reports come every 0.1 s
    root, base = served_dir
    meta = appliance_metadata(test_appliance_image)
    url = _catalog(root, base, test_appliance_image, sha256=meta["sha256"], size=meta["size"])
    ctx = _ctx_with_catalog(url)
    cancel = threading.Event()
    events: list[SetupEvent] = []

    def progress(event: SetupEvent) -> None:
        events.append(event)
        if event.phase == "download" and event.done:
            cancel.set()

    with pytest.raises(Cancelled):
        setup(APPLIANCE, name="cancelled", backend="kvm", progress=progress, cancel=cancel, ctx=ctx)
    assert ctx.projects.names() == []
    assert ctx.images.list() == []
    partial = list(ctx.home.downloads.glob("*.part"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < meta["size"]
    assert [e.phase for e in events][0] == "backend"


def test_an_existing_project_of_another_appliance_is_refused(vmlog_home: Path, tmp_path: Path) -> None:
    base = tmp_path / "other.img"
    base.write_bytes(b"\0" * (1 << 20))
    ctx = Workspace.default()
    projects.new_project("taken", str(base), ctx=ctx)
    with pytest.raises(AlreadyExists) as info:
        setup(APPLIANCE, name="taken", ctx=ctx)
    assert "--name" in (info.value.fix or "")
    assert ctx.projects.names() == ["taken"]


# -- the real thing --------------------------------------------------------------------------------


@pytest.mark.vm
def test_setup_from_an_empty_store_boots_a_guest_that_read_its_seed(
    short_home: Path, served_dir: tuple[Path, str], test_appliance_image: Path, kvm_available: None
) -> None:
    root, base = served_dir
    meta = appliance_metadata(test_appliance_image)
    url = _catalog(root, base, test_appliance_image, sha256=meta["sha256"], size=meta["size"])
    ctx = _ctx_with_catalog(url)
    assert ctx.images.list() == [] and ctx.projects.names() == []
    context = Context(
        hostname="seeded-by-setup",
        extra_files=(ExtraFile("/root/from-user-data.txt", "written by cloud-config\n"),),
    )
    events: list[SetupEvent] = []
    try:
        result = setup(
            APPLIANCE, name="fresh", context=context, ready_timeout=300, progress=events.append, ctx=ctx
        )
        assert result.created and result.backend == "kvm" and result.ready_by == "agent"
        assert list(dict.fromkeys(e.phase for e in events)) == list(PHASES)
        downloads = [e for e in events if e.phase == "download" and e.done is not None]
        assert downloads[-1].done == meta["size"] and downloads[-1].total == meta["size"]
        assert [i.sha256 for i in ctx.images.list()] == [meta["sha256"]]
        assert result.agent_socket is not None
        with GuestChannel(result.agent_socket) as guest:
            assert guest.check_output("hostname").strip() == "seeded-by-setup"
            assert guest.check_output("cat /root/from-user-data.txt") == "written by cloud-config\n"
            guest.check_output("echo still-the-same-boot > /tmp/boot-marker")

        again = setup(APPLIANCE, name="fresh", context=context, progress=events.append, ctx=ctx)
        assert not again.created and again.already_running and again.warnings == []
        with GuestChannel(again.agent_socket) as guest:  # not rebooted: /tmp lives in RAM
            assert guest.check_output("cat /tmp/boot-marker").strip() == "still-the-same-boot"

        running.down("fresh", mode="poweroff", ctx=ctx)
        started = setup(name="fresh", ctx=ctx)  # no appliance named: the project's own is used
        assert started.vm_before == "stopped" and started.ready_by == "agent"
        with GuestChannel(started.agent_socket) as guest:
            assert guest.check_output("hostname").strip() == "seeded-by-setup"
            assert guest.run("cat /tmp/boot-marker")[0] != 0  # a new boot
        with pytest.raises(Exception, match="no forwarded SSH port"):
            ssh_access("fresh", ctx=ctx)
    finally:
        if "fresh" in ctx.projects.names():
            projects.remove_project("fresh", ctx=ctx)
    assert not os.path.exists(ctx.home.runtime / "vms" / f"vmlog-{ctx.home.home_id}-fresh")
