"""The remote-libvirt fixtures (an sshd of the tests' own in front of this machine's daemon): see :mod:`sshd_host`."""

from tests.hypervisors.libvirt.remote.sshd_host import RemoteHost, remote_conn, remote_host

__all__ = ["RemoteHost", "remote_conn", "remote_host"]
