"""`vml ssh` to a remote project's guest goes through the host its URI names (the forward listens there).

The URI's user, port, key and host-key rule become a ``ProxyCommand`` running ``ssh -W`` to the host; a URI
that is not SSH is refused with the way round. The banner is read through that command: here a stand-in
``ssh`` on ``PATH`` plays the host. The real host over the sshd fixture is in test_remote_vm.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from test_remote_layers import stand_in_host

from hypervisors.errors import Unsupported
from hypervisors.spec import NicSpec, PortForward
from vmlog.app import projects, setup_project
from vmlog.projects import remote_ssh
from vmlog.workspace import Workspace

URI = "qemu+ssh://root@10.0.0.7:2200/system?keyfile=/keys/id_ed25519&no_verify=1&no_tty=1"


def test_the_uri_says_how_to_reach_the_host() -> None:
    jump = remote_ssh.jump_host(URI)
    assert (jump.host, jump.user, jump.port, jump.keyfile, jump.no_verify) == ("10.0.0.7", "root", 2200,
                                                                               "/keys/id_ed25519", True)
    assert jump.forward_to("127.0.0.1:2222") == [
        "ssh", "-p", "2200", "-i", "/keys/id_ed25519", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "BatchMode=yes", "-W", "127.0.0.1:2222", "root@10.0.0.7",
    ]
    plain = remote_ssh.jump_host("qemu+ssh://big.example.org/system")
    assert plain.forward_to("%h:%p") == ["ssh", "-W", "%h:%p", "big.example.org"]
    for uri in ("qemu+tcp://big.example.org/system", "qemu:///system"):
        with pytest.raises(Unsupported) as refused:
            remote_ssh.jump_host(uri)
        assert "vml console" in (refused.value.fix or "")


def _project_on(ctx: Workspace, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Project ``far`` with an SSH forward, made on the stand-in host, then recorded as living on ``uri``."""
    stand_in_host(tmp_path, monkeypatch)
    nic = NicSpec(forwards=(PortForward(host_port=2222, guest_port=22),))
    projects.new_project("far", str(base), nics=(nic,), ctx=ctx)
    files = ctx.projects.get("far")
    project = files.load()
    project.backend_options["uri"] = uri  # nothing below opens the host: the record says how to reach it
    files.write(project)


def test_vml_ssh_to_a_remote_guest_jumps_through_its_host(
    ctx: Workspace, base_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project_on(ctx, base_image, tmp_path, monkeypatch, URI)
    access = setup_project.ssh_access("far", check=False, ctx=ctx)
    argv = access.command("far")
    proxy = "ProxyCommand=" + shlex.join(remote_ssh.jump_host(URI).forward_to("%h:%p"))
    assert argv[:3] == ["ssh", "-o", proxy]
    assert argv[-1].endswith("@127.0.0.1") and argv[argv.index("-p") + 1] == "2222"

    bin_dir = tmp_path / "bin"  # a stand-in ssh: the far end of `ssh -W 127.0.0.1:2222` answers as sshd
    bin_dir.mkdir()
    log = tmp_path / "ssh-args"
    (bin_dir / "ssh").write_text(f'#!/bin/sh\necho "$@" > {log}\necho SSH-2.0-OpenSSH_9.2 guest\nsleep 5\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    checked = setup_project.ssh_access("far", ctx=ctx)
    assert checked.reachable and checked.banner == "SSH-2.0-OpenSSH_9.2 guest"
    assert "-W 127.0.0.1:2222 root@10.0.0.7" in log.read_text()
    (bin_dir / "ssh").write_text("#!/bin/sh\nexit 255\n")  # the host cannot be reached
    assert not setup_project.ssh_access("far", ctx=ctx).reachable


def test_a_remote_guest_over_a_tcp_connection_is_refused(
    ctx: Workspace, base_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project_on(ctx, base_image, tmp_path, monkeypatch, "qemu+tcp://10.0.0.7/system")
    with pytest.raises(Unsupported):
        setup_project.ssh_access("far", ctx=ctx)
