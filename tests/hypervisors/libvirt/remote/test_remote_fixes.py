"""The fix named for a failed remote connection comes from what libvirt and ssh said."""

from __future__ import annotations

from hypervisors.libvirt import connection, remote_fixes

URI = "qemu+ssh://ana@lab.example:2222/system"


def test_each_cause_gets_its_fix() -> None:
    daemon_down = "Cannot recv data: error: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file"
    assert "systemctl start libvirtd" in remote_fixes.connect_fix(URI, daemon_down)
    assert "ssh -p 2222 ana@lab.example" in remote_fixes.connect_fix(URI, "Host key verification failed.")
    no_key = "Cannot recv data: ana@lab.example: Permission denied (publickey).: Connection reset by peer"
    assert "ssh-copy-id -p 2222 ana@lab.example" in remote_fixes.connect_fix(URI, no_key)
    assert "netcat-openbsd" in remote_fixes.connect_fix(URI, "End of file while reading data: sh: 1: nc: not found")
    assert "virsh -c" in remote_fixes.connect_fix(URI, "something new")


def test_a_network_transport_is_remote_even_on_this_machine() -> None:
    assert connection.is_remote("qemu+ssh://root@127.0.0.1:2222/system")
    assert connection.is_remote("qemu+tls://lab.example/system")
    assert connection.is_remote("qemu://lab.example/system")
    assert not connection.is_remote("qemu:///system") and not connection.is_remote("qemu+unix:///system")
    assert not connection.is_local_system("qemu+ssh://root@127.0.0.1/system")
