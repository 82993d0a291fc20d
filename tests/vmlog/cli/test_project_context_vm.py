"""A store image made a project with `vml project new --context`: the real Debian cloud-init applies the template.

One boot: the real Debian appliance is put in a fresh home's image store, `vml project new` makes a
project of it with a user's context template (user from ``--user``, the key from ``~/.ssh``, a
``runcmd`` naming the project), `vml up` boots it, and `vml ssh` logs in as that user and runs a
command. The wall time is printed (``-s``) and appended to ``$VMLOG_TEST_CACHE/debian-vm-times.txt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from vmlog.errors import VmlogError

pytestmark = pytest.mark.vm

PROJECT = "ctxvm"
USER = "carol"
TEMPLATE = """\
kind = "nocloud"
description = "a tutorial VM"
user = "{user}"
hostname = "{hostname}"
ssh_public_key = "{ssh_key}"
[extra_user_data]
runcmd = ["echo 'made for {project}, braces {{kept}}' > /var/tmp/context-ran"]
"""


def _cache() -> Path:
    return Path(os.environ.get("VMLOG_TEST_CACHE", "~/.cache/vmlog-tests")).expanduser()


def _vml(env: dict[str, str], *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", *args], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True,  # no terminal: ssh never asks a password
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"vml {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _debian_qcow2() -> Path:
    from vmlog.testappliance.debian import build_debian_appliance

    try:
        image = build_debian_appliance(_cache(), progress=print)
    except VmlogError as exc:
        pytest.skip(f"cannot build vmlog-debian here: {exc}")
    qcow2 = image.with_suffix(".qcow2")
    if not qcow2.is_file() or qcow2.stat().st_mtime < image.stat().st_mtime:
        tmp = qcow2.with_suffix(".qcow2.tmp")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(image), str(tmp)], check=True)
        tmp.replace(qcow2)
    return qcow2


def test_project_new_with_a_template_then_ssh_as_its_user(monkeypatch: pytest.MonkeyPatch) -> None:
    qcow2 = _debian_qcow2()
    cache = _cache()  # before HOME moves
    home = Path(tempfile.mkdtemp(prefix="vml-ctx-", dir="/tmp"))
    user_home = home / "user"
    (user_home / ".ssh").mkdir(parents=True)
    key = user_home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {**os.environ, "VMLOG_HOME": str(home / "vmlog"), "HOME": str(user_home), "COLUMNS": "200",
           "SSH_ASKPASS_REQUIRE": "never"}  # fmt: skip
    env.pop("DISPLAY", None)
    monkeypatch.setenv("VMLOG_HOME", env["VMLOG_HOME"])
    monkeypatch.setenv("HOME", env["HOME"])
    from vmlog.app import contexts
    from vmlog.appliances.pull import import_local_image
    from vmlog.workspace import Workspace

    ws = Workspace.default()
    (stored,) = import_local_image(ws.images, qcow2, name="vmlog-debian").images
    source = home / "tutorial.toml"
    source.write_text(TEMPLATE)
    contexts.import_template(source, ctx=ws)
    started = time.monotonic()
    try:
        made = _vml(env, "project", "new", PROJECT, f"{stored.name}:{stored.version}", "--context", "tutorial",
                    "--user", USER, "--memory", "768")  # fmt: skip
        assert f"for {USER}" in made.stderr, made.stderr
        _vml(env, "up", PROJECT)
        deadline, last = time.monotonic() + 900, None
        while time.monotonic() < deadline:
            last = _vml(env, "ssh", PROJECT, "--", "whoami;", "cat", "/var/tmp/context-ran", timeout=120, check=False)
            if last.returncode == 0 and "made for" in last.stdout:
                break
            time.sleep(10)
        wall = time.monotonic() - started
        line = f"{time.strftime('%H:%M:%S')} project new --context + up + first vml ssh: {wall:.1f} s"
        print(line)
        with (cache / "debian-vm-times.txt").open("a") as log:
            log.write(line + "\n")
        assert last is not None and last.returncode == 0, (last.stdout, last.stderr) if last else None
        assert last.stdout.splitlines() == [USER, f"made for {PROJECT}, braces {{kept}}"]
    finally:
        _vml(env, "project", "rm", PROJECT, "--yes", timeout=300, check=False)
