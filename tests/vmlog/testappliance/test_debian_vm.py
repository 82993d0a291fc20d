"""A real Debian 12 guest through the CLI: the real cloud-init applies the seed, qemu-ga answers, saves are quiesced.

One VM for the whole module (booting Debian under TCG costs minutes): ``vml setup`` from a served
catalog, then the checks through the QEMU guest agent and through ``vml ssh``, then a live save of
data written without ``sync``, frozen by the agent, restored after an ACPI ``vml down``. The wall
time of each step is printed (``-s``) and appended to ``$VMLOG_TEST_CACHE/debian-vm-times.txt``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from vmlog.errors import VmlogError

pytestmark = pytest.mark.vm

APPLIANCE = "debian-real"
PROJECT = "rg"
USER = "alice"
HOSTNAME = "real-guest"


def _cache() -> Path:
    return Path(os.environ.get("VMLOG_TEST_CACHE", "~/.cache/vmlog-tests")).expanduser()


def _timed(what: str, started: float) -> None:
    line = f"{time.strftime('%H:%M:%S')} {what}: {time.monotonic() - started:.1f} s"
    print(line)
    _cache().mkdir(parents=True, exist_ok=True)
    with (_cache() / "debian-vm-times.txt").open("a") as log:
        log.write(line + "\n")


def _vml(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, f"vml {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def debian_image() -> Path:
    from vmlog.testappliance.debian import build_debian_appliance

    started = time.monotonic()
    try:
        image = build_debian_appliance(_cache(), progress=print)
    except VmlogError as exc:
        pytest.skip(f"cannot build vmlog-debian here: {exc}")
    _timed("vmlog-debian build (or cache check)", started)
    return image


def _serve(root: Path) -> tuple[ThreadingHTTPServer, str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def _qcow2(image: Path) -> Path:
    """The image as qcow2 (~0.4 GiB instead of a 2 GiB raw download), made once per build."""
    qcow2 = image.with_suffix(".qcow2")
    if not qcow2.is_file() or qcow2.stat().st_mtime < image.stat().st_mtime:
        tmp = qcow2.with_suffix(".qcow2.tmp")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(image), str(tmp)], check=True)
        tmp.replace(qcow2)
    return qcow2


def _catalog(root: Path, base: str, image: Path) -> str:
    from vmlog.testappliance.debian import debian_metadata

    meta = debian_metadata(image)
    qcow2 = _qcow2(image)
    (root / "debian.qcow2").symlink_to(qcow2)
    digest = hashlib.sha256(qcow2.read_bytes()).hexdigest()
    source = {"urls": [f"{base}/debian.qcow2"], "size": qcow2.stat().st_size, "digest": {"sha256": digest}}
    version = {
        "version": meta["version"], "min_memory_mib": meta["min_memory_mib"], "context": "nocloud",
        "boot": {"agent": "qemu-ga", "ssh": True}, "images": {"qcow2": source},
    }  # fmt: skip
    doc = {"vmlog_catalog": 1, "appliances": [{"name": APPLIANCE, "title": "Debian 12", "versions": [version]}]}
    (root / "catalog.json").write_text(json.dumps(doc))
    return f"{base}/catalog.json"


@pytest.fixture(scope="module")
def guest(debian_image: Path) -> Iterator[dict[str, Any]]:
    """``vml setup`` of the Debian appliance with a context: user, key, hostname, write_files, runcmd."""
    home = Path(tempfile.mkdtemp(prefix="vml-rg-", dir="/tmp"))
    user_home = home / "user"
    (user_home / ".ssh").mkdir(parents=True)
    key = user_home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    www = home / "www"
    www.mkdir()
    httpd, base = _serve(www)
    env = {**os.environ, "VMLOG_HOME": str(home / "vmlog"), "HOME": str(user_home), "COLUMNS": "200"}
    context = home / "context.toml"
    context.write_text(
        f'user = "{USER}"\nhostname = "{HOSTNAME}"\nssh_public_key_file = "{key}.pub"\n'
        '[[extra_files]]\npath = "/etc/vmlog-written.txt"\ncontent = "written by write_files\\n"\n'
        '[extra_user_data]\nruncmd = ["echo ran > /var/tmp/runcmd-ran"]\n'
    )
    saved = {k: os.environ.get(k) for k in ("VMLOG_HOME", "HOME")}
    os.environ.update({"VMLOG_HOME": env["VMLOG_HOME"], "HOME": env["HOME"]})
    try:
        _vml(env, "catalog", "add", _catalog(www, base, debian_image), "--name", "served")
        started = time.monotonic()
        done = _vml(env, "setup", APPLIANCE, "--name", PROJECT, "--context", str(context), "--json", timeout=1500)
        _timed("vml setup (pull + first boot to agent and cloud-init done)", started)
        yield {"env": env, "setup": json.loads(done.stdout), "home": home}
    finally:
        with_env = {k: v for k, v in saved.items() if v is not None}
        subprocess.run([sys.executable, "-m", "vmlog.cli.main", "project", "rm", PROJECT, "--yes"], env=env,
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip
        for k in saved:
            os.environ.pop(k, None)
        os.environ.update(with_env)
        httpd.shutdown()
        httpd.server_close()


def _ask(*commands: str, timeout: float = 300) -> list[str]:
    from vmlog.app.setup_project import ask_guest

    return ask_guest(PROJECT, list(commands), ready_timeout=timeout)


def test_real_cloud_init_applied_the_seed(guest: dict[str, Any]) -> None:
    setup = guest["setup"]
    assert setup["ready_by"] == "agent" and setup["ssh"]["reachable"], setup
    hostname, user, keys, written, runcmd, status = _ask(
        "hostname", f"id -un {USER}", f"cat /home/{USER}/.ssh/authorized_keys", "cat /etc/vmlog-written.txt",
        "cat /var/tmp/runcmd-ran", "cloud-init status",
    )  # fmt: skip
    assert hostname == HOSTNAME and user == USER
    assert keys.split()[:2] == (guest["home"] / "user/.ssh/id_ed25519.pub").read_text().split()[:2]
    assert written == "written by write_files" and runcmd == "ran"
    assert "done" in status
    started = time.monotonic()
    over_ssh = _vml(guest["env"], "ssh", PROJECT, "--", "sudo", "-n", "cat", "/etc/vmlog-written.txt", "&&", "hostname")
    _timed("vml ssh round trip", started)
    assert over_ssh.stdout.split() == ["written", "by", "write_files", HOSTNAME]


def test_the_guest_channel_contract_on_real_qemu_ga(guest: dict[str, Any]) -> None:
    """Every operation of :class:`hypervisors.guest.GuestAgent` against the real agent of the real guest."""
    from vmlog.projects.backends import open_backend
    from vmlog.workspace import Workspace

    project = Workspace.default().projects.get(PROJECT).load()
    with open_backend(project) as backend, backend.guest_agent(project.vm_name) as agent:
        agent.ping()
        info = agent.info()
        assert info.agent == "qemu-ga" and info.version.startswith("7.") and "guest-fsfreeze-freeze" in info.commands
        os_info = agent.osinfo()
        assert os_info.id == "debian" and os_info.version == "12" and "cloud-amd64" in os_info.kernel
        interfaces = {i.name: i for i in agent.network_interfaces()}
        assert any(a.startswith("10.0.2.") for a in interfaces["eth0"].addresses), interfaces
        agent.write_file("/root/through-agent.bin", bytes(range(256)) * 256, mode=0o600)
        assert agent.read_file("/root/through-agent.bin") == bytes(range(256)) * 256
        result = agent.exec(["/bin/sh", "-c", "stat -c %a /root/through-agent.bin; echo oops >&2; exit 4"])
        assert (result.exit_code, result.stdout, result.stderr) == (4, b"600\n", b"oops\n")
        assert agent.exec(["/bin/cat"], stdin=b"fed through stdin").stdout == b"fed through stdin"
        agent.set_time()
        skew = float(agent.check_shell("date +%s.%N")) - time.time()
        assert abs(skew) < 30, skew


def test_quiesced_live_save_keeps_unsynced_data(guest: dict[str, Any]) -> None:
    from vmlog.app.states import save_state
    from vmlog.context.quiesce import quiesced
    from vmlog.projects.backends import open_backend
    from vmlog.workspace import Workspace

    digest = _ask("head -c 2M /dev/urandom > /root/unsynced.bin && sha256sum < /root/unsynced.bin")[0].split()[0]
    project = Workspace.default().projects.get(PROJECT).load()
    started = time.monotonic()
    with open_backend(project) as backend, quiesced(backend, project.vm_name) as result:
        save_state(PROJECT, "quiesced")  # the live snapshot, inside the freeze
    _timed("quiesced live save", started)
    assert result.quiesced and result.frozen >= 1 and result.thaw_error is None, result.describe()
    _ask("echo after > /root/after-save.txt")  # the guest writes again: it was thawed
    started = time.monotonic()
    _vml(guest["env"], "down", PROJECT, "--timeout", "300")  # ACPI power button; systemd shuts down
    _vml(guest["env"], "state", "restore", "quiesced", "--project", PROJECT, "--discard")
    _vml(guest["env"], "up", PROJECT)
    restored, after = _ask("sha256sum < /root/unsynced.bin", "test -e /root/after-save.txt && echo yes || echo no",
                           timeout=900)  # fmt: skip
    _timed("down (ACPI) + restore + boot to agent", started)
    assert restored.split()[0] == digest
    assert after == "no"
