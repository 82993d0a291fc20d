"""A real Debian 12 guest through the CLI: the real cloud-init applies the seed, qemu-ga answers, saves are quiesced.

One VM for the whole module (booting Debian under TCG costs minutes): ``vml setup`` from a served
catalog, then the checks through the QEMU guest agent and through ``vml ssh``, then a live save of
data written without ``sync``, frozen by the agent, restored after an ACPI ``vml down``; last an
import in a second home, on a base vmlog has no facts about, whose agent is found after its boot
and mounts a release, which a reboot inside the guest mounts again from its fstab; then an archive
unarchived in a third home, logged into over SSH as that home's user. The wall
time of each step is printed (``-s``) and appended to ``$VMLOG_TEST_CACHE/debian-vm-times.txt``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
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
VIRTIOFSD = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")


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
        yield {"env": env, "setup": json.loads(done.stdout), "home": home, "www": www, "base": base}
    finally:
        with_env = {k: v for k, v in saved.items() if v is not None}
        subprocess.run([sys.executable, "-m", "vmlog.cli.main", "project", "rm", PROJECT, "--yes"], env=env,
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip
        for k in saved:
            os.environ.pop(k, None)
        os.environ.update(with_env)
        httpd.shutdown()
        httpd.server_close()
        shutil.rmtree(home, ignore_errors=True)  # its homes hold disks and an archive: about 1.5 GB


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


def test_the_conformance_guest_checks_pass_on_real_qemu_ga(guest: dict[str, Any]) -> None:
    """The checks the conformance suite holds the simulated agents to, on libvirt's real qemu-ga."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hypervisors" / "conformance"))
    import guest_checks

    from vmlog.projects.backends import open_backend
    from vmlog.workspace import Workspace

    project = Workspace.default().projects.get(PROJECT).load()
    started = time.monotonic()
    with open_backend(project) as backend, backend.guest_agent(project.vm_name) as agent:
        guest_checks.check_ping_and_info(agent)
        guest_checks.check_exec(agent)
        guest_checks.check_file_round_trip(agent)
        guest_checks.check_os_and_network(agent)
        guest_checks.check_fsfreeze(agent, offered=True)
    _timed("conformance guest checks on qemu-ga", started)


RELEASE = "1.0.0"
GUEST_RELEASE = f"/cvmfs-releases/{RELEASE}"
README = "Physics release 1.0.0"


def _mount_release_while_down(guest: dict[str, Any]) -> bool:
    """Publish a release tree, add it as a source and mount a release for the stopped project (shared at boot)."""
    if shutil.which("fusermount3") is None or not any(Path(p).exists() for p in VIRTIOFSD):
        return False
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "releases"))
    from release_repos import HttpTreeBuilder

    tree = HttpTreeBuilder(guest["www"] / "tree")
    tree.add_file(f"releases/1.0/{RELEASE}/share/README", (README + "\n").encode())
    tree.publish(1, "first")
    env = guest["env"]
    _vml(env, "release", "source", "add", f"{guest['base']}/tree", "--kind", "http-tree",
         "--pattern", "releases/{series}/{release}")  # fmt: skip
    _vml(env, "release", "mount", RELEASE, "--project", PROJECT)
    return True


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
    guest["release"] = _mount_release_while_down(guest)  # shares it from this boot on: no boot of its own
    _vml(guest["env"], "up", PROJECT)
    restored, after = _ask("sha256sum < /root/unsynced.bin", "test -e /root/after-save.txt && echo yes || echo no",
                           timeout=900)  # fmt: skip
    _timed("down (ACPI) + restore + boot to agent", started)
    assert restored.split()[0] == digest
    assert after == "no"


def test_a_release_in_the_real_guest_is_mounted_checked_and_unmounted_first(guest: dict[str, Any]) -> None:
    """Mounted at boot through qemu-ga and kept in fstab; unmounted in the guest before its share leaves; busy refused.

    Runs on the boot of the quiesced-save test (which mounted the release while the VM was down).
    """
    if not guest.get("release"):
        pytest.skip("needs fuse3 and virtiofsd on the host (and the boot of the quiesced-save test)")
    env = guest["env"]
    readme, in_fstab, in_mounts = _ask(
        f"cat {GUEST_RELEASE}/share/README", f"grep -c 'rel-{RELEASE} {GUEST_RELEASE} virtiofs ro,nofail' /etc/fstab",
        f"grep -c ' {GUEST_RELEASE} virtiofs ' /proc/mounts",
    )  # fmt: skip
    assert (readme, in_fstab, in_mounts) == (README, "1", "1")
    started = time.monotonic()
    _vml(env, "release", "umount", RELEASE, "--project", PROJECT)
    gone, fstab, listing = _ask(
        f"grep -c ' {GUEST_RELEASE} ' /proc/mounts || true", f"grep -c 'rel-{RELEASE}' /etc/fstab || true",
        f"ls {GUEST_RELEASE} 2>&1; echo rc=$?",
    )  # fmt: skip
    assert (gone, fstab) == ("0", "0") and "Transport endpoint" not in listing, listing
    mounted = _vml(env, "release", "mount", RELEASE, "--project", PROJECT)  # the VM has shared memory now: hot-plug
    assert "mounted in the guest" in mounted.stdout + mounted.stderr, mounted.stderr
    assert _ask(f"cat {GUEST_RELEASE}/share/README") == [README]
    _ask(f"setsid sh -c 'cd {GUEST_RELEASE} && exec sleep 600' </dev/null >/dev/null 2>&1 & echo started")
    busy = subprocess.run([sys.executable, "-m", "vmlog.cli.main", "release", "umount", RELEASE, "--project", PROJECT],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)  # fmt: skip
    assert busy.returncode != 0 and "could not be unmounted in the guest" in busy.stderr, busy.stderr
    assert "fuser -vm" in busy.stderr
    assert _ask(f"cat {GUEST_RELEASE}/share/README") == [README]  # the share stayed: the guest still reads it
    _ask("pkill -f '^sleep 600$'; sleep 1; echo killed")
    _vml(env, "release", "umount", RELEASE, "--project", PROJECT)
    _timed("release umount + live mount + busy refusal + umount in the real guest", started)


IMPORTER = "bob"


def test_an_imported_state_is_logged_into_as_the_importer(guest: dict[str, Any], debian_image: Path) -> None:
    """Export, import in a second home with another user and key, boot: the seed's new instance-id brings the key."""
    env = guest["env"]
    home_b = guest["home"] / "importer"
    (home_b / "user" / ".ssh").mkdir(parents=True)
    key_b = home_b / "user" / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_b)], check=True)
    env_b = {**env, "VMLOG_HOME": str(home_b / "vmlog"), "HOME": str(home_b / "user"), "USER": IMPORTER,
             "LOGNAME": IMPORTER}  # fmt: skip
    started = time.monotonic()
    _vml(env, "down", PROJECT, "--timeout", "300")  # one TCG guest at a time on this machine
    _vml(env, "state", "save", "to-send", "--project", PROJECT)
    _vml(env, "state", "export", "to-send", "--project", PROJECT, "--output", str(home_b))
    (bundle,) = home_b.glob("*.vmlstate")
    base = _qcow2(debian_image)  # the base the sender pulled, so nothing is downloaded
    imported = json.loads(_vml(env_b, "state", "import", str(bundle), "--trust", "--base", str(base), "--json").stdout)
    name = imported["project"]
    share = bool(guest.get("release"))
    try:
        if share:  # shared from the first boot on: the agent of a base vmlog has no facts about is found then
            _vml(env_b, "release", "source", "add", f"{guest['base']}/tree", "--kind", "http-tree",
                 "--pattern", "releases/{series}/{release}")  # fmt: skip
            _vml(env_b, "release", "mount", RELEASE, "--project", name)
        up = _vml(env_b, "up", name)
        seen = _ssh_until(env_b, name, ["id", "-un", "&&", "cat", "/etc/vmlog-written.txt"], lambda _out: True)
        assert seen.split() == [IMPORTER, "written", "by", "write_files"]  # the sender's disk, our login
        _timed("down + export + import in a second home + boot + vml ssh as the importer", started)
        if share:
            assert "mount the releases in the guest" not in up.stdout + up.stderr, up.stdout + up.stderr
            (meta,) = (home_b / "vmlog").rglob(f"{name}/setup/setup.json")
            assert json.loads(meta.read_text())["guest_agent"] == "standard"  # found and recorded after the boot
            _check_release_mounted(env_b, name)
            _reboot_keeps_the_release(env_b, name)
    finally:
        for args in (["release", "umount", RELEASE, "--project", name], ["project", "rm", name, "--yes"]):
            subprocess.run([sys.executable, "-m", "vmlog.cli.main", *args], env=env_b, capture_output=True,
                           timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def _ssh_until(env: dict[str, str], name: str, argv: list[str], done: Any, timeout: float = 900) -> str:
    """``vml ssh NAME -- ARGV`` again until it succeeds and ``done(stdout)`` holds; its output."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            seen = subprocess.run([sys.executable, "-m", "vmlog.cli.main", "ssh", name, "--", *argv], env=env,
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
        except subprocess.TimeoutExpired:
            continue
        if seen.returncode == 0 and done(seen.stdout):
            return seen.stdout
        time.sleep(10)
    raise AssertionError(f"vml ssh {name} -- {' '.join(argv)} never succeeded: {seen and seen.stderr}")


def _check_release_mounted(env: dict[str, str], name: str) -> None:
    """The release is mounted in the guest at its path (its kernel says so), readable, and in its fstab once."""
    out = _ssh_until(env, name, [
        "cat", f"{GUEST_RELEASE}/share/README", "&&", "grep", "-c", f"' {GUEST_RELEASE} virtiofs '", "/proc/mounts",
        "&&", "grep", "-c", f"'rel-{RELEASE} {GUEST_RELEASE} virtiofs ro,nofail'", "/etc/fstab",
    ], lambda _out: True, timeout=300)  # fmt: skip
    assert out.splitlines() == [README, "1", "1"], out


def _reboot_keeps_the_release(env: dict[str, str], name: str) -> None:
    """A reboot from inside the guest (vmlog does nothing): its fstab line mounts the share again at boot."""
    boot_id = _ssh_until(env, name, ["cat", "/proc/sys/kernel/random/boot_id"], lambda _out: True).strip()
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "vmlog.cli.main", "ssh", name, "--", "sudo", "-n", "systemctl", "reboot"],
                   env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    _ssh_until(env, name, ["cat", "/proc/sys/kernel/random/boot_id"], lambda out: out.strip() not in ("", boot_id))
    _check_release_mounted(env, name)
    _timed("reboot inside the guest until the release is mounted again from its fstab", started)


ARCHIVE_IMPORTER = "carol"


def test_an_unarchived_project_is_logged_into_as_the_importer(guest: dict[str, Any]) -> None:
    """Archive, unarchive in a third home with another user and key, boot: the new seed's user logs in over SSH."""
    env = guest["env"]
    home_c = guest["home"] / "unarchiver"
    (home_c / "user" / ".ssh").mkdir(parents=True)
    key_c = home_c / "user" / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_c)], check=True)
    env_c = {**env, "VMLOG_HOME": str(home_c / "vmlog"), "HOME": str(home_c / "user"), "USER": ARCHIVE_IMPORTER,
             "LOGNAME": ARCHIVE_IMPORTER}  # fmt: skip
    started = time.monotonic()
    _vml(env, "down", PROJECT, "--timeout", "300")  # stopped already after the import test; one TCG guest at a time
    _vml(env, "project", "archive", PROJECT, "-o", str(home_c / "rg.vmlarchive"))
    result = json.loads(_vml(env_c, "project", "unarchive", str(home_c / "rg.vmlarchive"), "--json").stdout)
    assert result["user"] == ARCHIVE_IMPORTER and result["ssh_port"], result
    (meta,) = (home_c / "vmlog").rglob(f"{PROJECT}/setup/setup.json")
    assert json.loads(meta.read_text())["guest_agent"] == "standard"  # the archived agent came along
    _timed("archive + unarchive in a third home", started)
    try:
        _vml(env_c, "up", PROJECT)
        seen = _ssh_until(env_c, PROJECT, ["id", "-un", "&&", "cat", "/etc/vmlog-written.txt"], lambda _out: True)
        assert seen.split() == [ARCHIVE_IMPORTER, "written", "by", "write_files"]  # the archived disk, our login
        _timed("archive + unarchive in a third home + boot + vml ssh as the importer", started)
    finally:
        subprocess.run([sys.executable, "-m", "vmlog.cli.main", "project", "rm", PROJECT, "--yes"], env=env_c,
                       capture_output=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip
