"""The simulated guest behind simulated Guest Additions and VMware Tools: commands really run, files really move.

A simulated VM whose folder holds ``.sim-guest/agent.json`` has the guest agent "installed" (put there by
:func:`install_agent`, as a user would install Guest Additions or open-vm-tools in the guest); while the VM's QEMU
runs, the agent answers. It runs a guest command as a host subprocess whose working directory, ``HOME`` and
``TMPDIR`` are in the VM's sandbox (``.sim-guest/home/<user>``, ``.sim-guest/tmp``), so ``mktemp`` and relative
paths land there; guest paths are host paths (the one deviation from a real guest: absolute paths outside the
sandbox reach the host's files, so tests use paths the guest gave them, such as ``mktemp``'s).

What the agent reports about the guest (OS, kernel, one NAT interface with VirtualBox's and VMware's default
guest address 10.0.2.15 / a DHCP lease) is recorded in ``agent.json`` and printed in each tool's documented format
by ``vbox_guest.py`` and ``vmrun_guest.py``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

SANDBOX = ".sim-guest"
DEFAULT_USERS = {"vmlog": "vmlog-password"}


def sandbox(vm_dir: Path) -> Path:
    return Path(vm_dir) / SANDBOX


def install_agent(vm_dir: Path, *, users: dict[str, str] | None = None, ip: str = "10.0.2.15",
                  mac: str = "080027A1B2C3") -> Path:
    """Install the simulated guest agent in the VM whose folder is ``vm_dir``; returns the sandbox."""
    root = sandbox(vm_dir)
    for sub in ("tmp", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    record = {
        "users": dict(users or DEFAULT_USERS),
        "os": {"product": "Linux", "release": platform.release(), "version": platform.version(),
               "distribution": "Debian GNU/Linux 12 (bookworm)"},
        "net": [{"name": "eth0", "mac": mac, "ip": ip, "netmask": "255.255.255.0"}],
    }
    (root / "agent.json").write_text(json.dumps(record, indent=1))
    for user in record["users"]:
        (root / "home" / user).mkdir(parents=True, exist_ok=True)
    return root


def agent_record(vm_dir: Path) -> dict[str, Any] | None:
    """The installed agent's record, or None when the guest has no agent."""
    path = sandbox(vm_dir) / "agent.json"
    return json.loads(path.read_text()) if path.is_file() else None


def login_ok(record: dict[str, Any], user: str | None, password: str | None) -> bool:
    return user is not None and record["users"].get(user) == password


def run(vm_dir: Path, user: str, argv: list[str], timeout: float | None = None) -> tuple[int, bytes, bytes]:
    """Run ``argv`` as the guest runs a program for ``user``: (exit code, stdout, stderr); 127 if it is missing."""
    root = sandbox(vm_dir)
    home = root / "home" / user
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(root / "tmp"),
           "USER": user, "LOGNAME": user, "LANG": "C.UTF-8"}
    try:
        proc = subprocess.run(argv, cwd=home, env=env, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, b"", f"{argv[0]}: not found\n".encode()
    except subprocess.TimeoutExpired as exc:
        return -1, exc.stdout or b"", exc.stderr or b""
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return code, proc.stdout, proc.stderr


def temp_file(vm_dir: Path, prefix: str = "vmware") -> str:
    """A new empty file in the guest's temporary directory (what ``createTempfileInGuest`` makes)."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix=prefix, dir=sandbox(vm_dir) / "tmp")
    os.close(fd)
    return name
