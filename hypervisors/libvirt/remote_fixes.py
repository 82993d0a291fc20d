"""What fixes a failed connection to a remote libvirt, read from the words of libvirt's and ssh's error.

libvirt's ssh transport passes on what ``ssh`` and the far side's shell said (``Permission denied (publickey)``,
``sh: 1: nc: not found``, ...): that names the cause better than any error code.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def _login(uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or "HOST"
    user = f"{parts.username}@" if parts.username else ""
    port = f"-p {parts.port} " if parts.port else ""
    return f"{port}{user}{host}"


# (what the error says, what the fix is): the first match wins; {login} and {uri} are filled in.
CONNECT_FIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Permission denied (publickey", "Permission denied, please try again", "no identities"),
     "the host did not accept your SSH key: `ssh-copy-id {login}` (or name the key: ?keyfile=PATH in the URI),"
     " then check that `ssh {login} true` logs in without a password"),
    (("Host key verification failed",),
     "the host's SSH key is not known here: log in once with `ssh {login}` and accept it"),
    (("virt-ssh-helper", "nc: not found", "nc: command not found", "netcat", "No such file or directory: nc"),
     "the host lacks the program libvirt's ssh transport runs there (`virt-ssh-helper`, else `nc`): install"
     " libvirt-daemon there (it has virt-ssh-helper) or netcat-openbsd; `?proxy=native` (virt-ssh-helper) or"
     " `?proxy=netcat` in the URI picks one"),
    (("Connection refused", "Connection timed out", "No route to host", "Could not resolve hostname"),
     "no SSH server answers: check the host name and port, and that sshd runs there (`ssh {login} true`)"),
    (("Failed to connect socket", "libvirt-sock", "Connection reset by peer", "End of file while reading data"),
     "libvirtd does not run on the host (or your user cannot reach its socket):"
     " `ssh {login} systemctl start libvirtd`"),
    (("authentication unavailable", "Permission denied", "access denied", "polkit"),
     "your user on the host may not use the system daemon: add it to the libvirt group there"
     " (`ssh {login} sudo adduser $USER libvirt`) or log in as root"),
)


def connect_fix(uri: str, error: str) -> str:
    """The fix for a failed connection to ``uri``, from the words of libvirt's (and ssh's) error."""
    for needles, fix in CONNECT_FIXES:
        if any(needle.lower() in error.lower() for needle in needles):
            return fix.format(login=_login(uri), uri=uri)
    return f"see what `virsh -c '{uri}' version` says; it uses the same connection"
