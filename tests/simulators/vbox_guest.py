"""Simulated Guest Additions for the simulated ``VBoxManage``: ``guestproperty`` and ``guestcontrol``.

Formats and texts, each from VirtualBox's own sources or a real run (samples in tests/fixtures/real/virtualbox,
origins in its NOTES.md):

* ``guestproperty get``: ``Value: <v>`` or ``No value set!`` (VBoxManageGuestProp.cpp, handleGetGuestProperty;
  a real ``Value: 4.2.10`` in hashicorp/vagrant#1575); ``wait`` prints ``Name: <n>, value: <v>, flags: <f>``
  (handleWaitGuestProperty); ``enumerate`` prints ``<name> = '<value>' @ <time>`` (the real
  ``guestproperty-enumerate.txt``, VirtualBox/virtualbox#403).
* ``guestcontrol run``: the guest's stdout and stderr on VBoxManage's own; the exit code is the guest's mapped
  as VBoxManageGuestCtrl.cpp ``gctlRunCalculateExitCode`` does (0 stays 0, 1..93 become 33..125, larger ones 126,
  a signal 18);
  a VM that is not running: ``Machine "<vm>" is not running (currently <state>)!`` (gctlCtxInit);
  no Guest Additions: ``The guest execution service is not ready (yet)`` with its Details/Context lines (the real
  ``guestcontrol-not-ready.txt``, double16/ie-selenium#1); a wrong password: ``The specified user was not able
  to logon on guest`` (GuestSessionImpl.cpp, VERR_AUTHENTICATION_FAILURE).
* ``showvminfo --machinereadable`` of a running VM: ``GuestAdditionsRunLevel=<n>`` (0 none, 1 system,
  2 userland, 3 desktop) and ``GuestAdditionsVersion="<v> r<rev>"`` once the additions run.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from simulators import sim_guest
from simulators.vbox_model import VERSION, Registry, VBoxError

STATE_TEXT = {"poweroff": "powered off", "saved": "saved", "aborted": "aborted", "paused": "paused"}
MAPPED_FIRST, MAPPED_RANGE, MAPPED_BIG, TERM_SIGNAL, EXIT_TIMEOUT = 33, 93, 126, 18, 20
NOT_READY = (
    "VBoxManage: error: The guest execution service is not ready (yet)\n"
    "VBoxManage: error: Details: code VBOX_E_IPRT_ERROR (0x80bb0005), component GuestSessionWrap, "
    "interface IGuestSession, callee nsISupports\n"
    'VBoxManage: error: Context: "WaitForArray(ComSafeArrayAsInParam(aSessionWaitFlags), 30 * 1000, '
    '&enmWaitResult)" at line 938 of file VBoxManageGuestCtrl.cpp\n'
)
LOGON_FAILED = (
    "VBoxManage: error: The specified user was not able to logon on guest\n"
    "VBoxManage: error: Details: code VBOX_E_IPRT_ERROR (0x80bb0005), component GuestSessionWrap, "
    "interface IGuestSession, callee nsISupports\n"
)


def _running_agent(m: dict[str, Any]) -> dict[str, Any] | None:
    return sim_guest.agent_record(Path(m["folder"])) if m["state"] == "running" else None


def properties(m: dict[str, Any]) -> dict[str, str]:
    """What the running additions publish under /VirtualBox/ (nothing without them)."""
    record = _running_agent(m)
    if record is None:
        return {}
    version, revision = VERSION.split("r", 1) if "r" in VERSION else (VERSION, "0")
    props = {
        "/VirtualBox/GuestAdd/Version": version.split("_")[0], "/VirtualBox/GuestAdd/Revision": revision,
        "/VirtualBox/GuestAdd/VersionExt": version.split("_")[0],
        "/VirtualBox/GuestInfo/OS/Product": record["os"]["product"],
        "/VirtualBox/GuestInfo/OS/Release": record["os"]["release"],
        "/VirtualBox/GuestInfo/OS/Version": record["os"]["version"],
        "/VirtualBox/GuestInfo/OS/LoggedInUsers": "0", "/VirtualBox/GuestInfo/OS/NoLoggedInUsers": "true",
        "/VirtualBox/GuestInfo/Net/Count": str(len(record["net"])),
    }
    for index, nic in enumerate(record["net"]):
        prefix = f"/VirtualBox/GuestInfo/Net/{index}"
        props.update({f"{prefix}/Name": nic["name"], f"{prefix}/MAC": nic["mac"], f"{prefix}/Status": "Up",
                      f"{prefix}/V4/IP": nic["ip"], f"{prefix}/V4/Netmask": nic["netmask"],
                      f"{prefix}/V4/Broadcast": nic["ip"].rsplit(".", 1)[0] + ".255"})
    return props


def info_lines(m: dict[str, Any]) -> list[str]:
    """The Guest Additions lines of ``showvminfo --machinereadable`` (only a running VM has them)."""
    if m["state"] != "running":
        return []
    if _running_agent(m) is None:
        return ["GuestAdditionsRunLevel=0"]
    return ["GuestAdditionsRunLevel=2", f'GuestAdditionsVersion="{VERSION.split("r")[0]} r{VERSION.split("r")[-1]}"']


def cmd_guestproperty(args: list[str]) -> int:
    if len(args) < 2:
        sys.stderr.write("VBoxManage: error: Incorrect parameters\n")
        return 2
    action, vm = args[0], args[1]
    with Registry.open() as reg:
        m = reg.find_machine(vm)
        props = properties(m)
    if action == "get":
        value = props.get(args[2]) if len(args) > 2 else None
        sys.stdout.write(f"Value: {value}\n" if value else "No value set!\n")
        return 0
    if action == "enumerate":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        width = max((len(n) for n in props), default=1)
        for name, value in sorted(props.items()):
            sys.stdout.write(f"{name:<{width}} = '{value}'".ljust(width + 35) + f" @ {stamp}\n")
        if not props:
            sys.stdout.write("No properties found.\n")
        return 0
    if action == "wait":
        return _wait(vm, args[2] if len(args) > 2 else "*", args[3:])
    sys.stderr.write(f"VBoxManage: error: Invalid parameter '{action}'\n")
    return 2


def _wait(vm: str, pattern: str, options: list[str]) -> int:
    import fnmatch

    timeout = float(options[options.index("--timeout") + 1]) / 1000 if "--timeout" in options else 3600.0
    deadline = time.monotonic() + timeout
    while True:
        with Registry.open() as reg:
            props = properties(reg.find_machine(vm))
        for name, value in sorted(props.items()):
            if any(fnmatch.fnmatchcase(name, p) for p in pattern.split("|")):
                sys.stdout.write(f"Name: {name}, value: {value}, flags: \n")
                return 0
        if time.monotonic() >= deadline:
            sys.stdout.write("Time out or interruption while waiting for a notification.\n")
            return 2 if "--fail-on-timeout" in options else 0
        time.sleep(0.2)


def _split_common(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Take ``--username``/``--password``/``--passwordfile``/``--domain`` wherever they stand before ``--``."""
    common: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        if args[i] == "--":
            rest += args[i:]
            break
        if args[i] in ("--username", "--password", "--passwordfile", "--domain") and i + 1 < len(args):
            common[args[i]] = args[i + 1]
            i += 2
            continue
        rest.append(args[i])
        i += 1
    if "--passwordfile" in common:
        common["--password"] = Path(common["--passwordfile"]).read_text().splitlines()[0]
    return common, rest


def map_exit_code(code: int) -> int:
    if code < 0:
        return TERM_SIGNAL
    if code == 0:
        return 0
    return code + MAPPED_FIRST - 1 if code <= MAPPED_RANGE else MAPPED_BIG


def cmd_guestcontrol(args: list[str]) -> int:
    if len(args) < 2:
        sys.stderr.write("VBoxManage: error: Incorrect parameters\n")
        return 2
    vm = args[0]
    common, rest = _split_common(args[1:])
    sub, rest = rest[0], rest[1:]
    with Registry.open() as reg:
        m = reg.find_machine(vm)
        if m["state"] != "running":
            sys.stderr.write(f'VBoxManage: error: Machine "{vm}" is not running '
                             f'(currently {STATE_TEXT.get(m["state"], m["state"])})!\n')
            return 1
        folder = Path(m["folder"])
    record = sim_guest.agent_record(folder)
    if record is None:
        sys.stderr.write(NOT_READY)
        return 1
    user = common.get("--username")
    if not sim_guest.login_ok(record, user, common.get("--password")):
        sys.stderr.write(LOGON_FAILED)
        return 1
    assert user is not None
    if sub == "run":
        return _run(folder, user, rest)
    if sub in ("copyfrom", "copyto"):
        return _copy(rest)
    raise VBoxError(f"Unknown sub-command: '{sub}'", "E_INVALIDARG", "0x80070057")


def _run(folder: Path, user: str, rest: list[str]) -> int:
    if "--" not in rest:
        sys.stderr.write("VBoxManage: error: No executable specified!\n")
        return 2
    options, argv = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    exe = options[options.index("--exe") + 1] if "--exe" in options else argv[0]
    timeout = float(options[options.index("--timeout") + 1]) / 1000 if "--timeout" in options else None
    code, out, err = sim_guest.run(folder, user, [exe, *argv[1:]], timeout or None)
    if code == -1:  # killed at --timeout: ProcessStatus_TimedOutKilled
        return EXIT_TIMEOUT
    if "--wait-stdout" in options or "--no-wait-stdout" not in options:
        sys.stdout.buffer.write(out)
    if "--wait-stderr" in options or "--no-wait-stderr" not in options:
        sys.stderr.buffer.write(err)
    return map_exit_code(code)


def _copy(rest: list[str]) -> int:
    paths = [a for a in rest if not a.startswith("-")]
    if len(paths) < 2:
        sys.stderr.write("VBoxManage: error: No destination specified!\n")
        return 2
    *sources, dest = paths
    for source in sources:
        src = Path(source)
        if not src.is_file():  # the guest's IPRT status (not from a sample: the wording of 7.0 differs by version)
            sys.stderr.write(f'VBoxManage: error: File "{source}" not found on guest (VERR_FILE_NOT_FOUND)\n')
            return 1
        target = Path(dest) / src.name if Path(dest).is_dir() else Path(dest)
        shutil.copyfile(src, target)
    return 0
