"""Simulated VMware Tools for the simulated ``vmrun``: the Guest OS commands, on the simulated guest of sim_guest.py.

Reference: VMware, "Using vmrun to Control Virtual Machines", "Guest Operating System Commands":
``checkToolsState <vmx>`` prints ``unknown``, ``installed`` or ``running``; ``runProgramInGuest <vmx>
[-noWait] [-activeWindow] [-interactive] <program> [args]`` (the program's output is not returned);
``fileExistsInGuest``, ``createTempfileInGuest`` (prints the new file's path), ``deleteFileInGuest``,
``copyFileFromHostToGuest``/``copyFileFromGuestToHost <vmx> <from> <to>``, ``getGuestIPAddress <vmx>
[-wait]``, ``readVariable <vmx> guestVar|runtimeConfig|guestEnv <name>``; guest commands need ``-gu``/``-gp``.
For a Linux guest the program and its arguments form one command line that a guest shell runs (vSphere
``GuestProgramSpec``: "the program will be executed by a guest shell. This allows stdio redirection").

Texts, each from a real run (tests/fixtures/real/vmware, origins in its NOTES.md):
``Error: Guest program exited with non-zero exit code: <n>`` (``runprogram-nonzero.txt``),
``Error: The VMware Tools are not running in the virtual machine: <vmx>`` (``tools-not-running.txt``),
``Error: Invalid user name or password for the guest OS`` and ``Error: A file was not found``; every failure
exits with status 255, like the other vmrun errors.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from simulators import sim_guest
from simulators.qemu_vm import QemuVM

GUEST_COMMANDS = {
    "checkToolsState", "runProgramInGuest", "fileExistsInGuest", "createTempfileInGuest", "deleteFileInGuest",
    "copyFileFromHostToGuest", "copyFileFromGuestToHost", "getGuestIPAddress", "readVariable",
}
NEEDS_LOGIN = GUEST_COMMANDS - {"checkToolsState", "getGuestIPAddress", "readVariable"}
RUN_FLAGS = ("-noWait", "-activeWindow", "-interactive")


class GuestError(Exception):
    pass


def _running(vmx: Path) -> bool:
    return QemuVM(vmx.parent / ".sim-run").alive()


def command(cmd: str, args: list[str], user: str | None, password: str | None) -> str:
    """One guest command's output; ``GuestError`` carries the text vmrun prints after ``Error: ``."""
    if not args:
        raise GuestError("Invalid arguments")
    vmx = Path(args[0]).resolve()
    if not vmx.exists():
        raise GuestError(f"Cannot open VM: {vmx}, The virtual machine cannot be found")
    record = sim_guest.agent_record(vmx.parent)
    if cmd == "checkToolsState":
        if not _running(vmx):
            return "unknown\n"
        return "running\n" if record is not None else "unknown\n"
    if not _running(vmx):
        raise GuestError(f"The virtual machine is not powered on: {vmx}")
    if record is None:
        raise GuestError(f"The VMware Tools are not running in the virtual machine: {vmx}")
    if cmd in NEEDS_LOGIN and not sim_guest.login_ok(record, user, password):
        raise GuestError("Invalid user name or password for the guest OS")
    rest = args[1:]
    if cmd == "getGuestIPAddress":
        return record["net"][0]["ip"] + "\n"
    if cmd == "readVariable":
        if len(rest) < 2 or rest[0] not in ("guestVar", "runtimeConfig", "guestEnv"):
            raise GuestError("Invalid arguments")
        return str(record.get("guestVars", {}).get(rest[1], "")) + "\n"
    assert user is not None
    return _file_or_program(vmx.parent, user, cmd, rest)


def _file_or_program(vm_dir: Path, user: str, cmd: str, rest: list[str]) -> str:
    if cmd == "runProgramInGuest":
        no_wait = "-noWait" in rest
        words = [w for w in rest if w not in RUN_FLAGS]
        if not words:
            raise GuestError("Invalid arguments")
        line = " ".join([shlex.quote(words[0]), *words[1:]])  # one command line, parsed by the guest's shell
        if no_wait:
            subprocess.Popen(["/bin/sh", "-c", line], cwd=sim_guest.sandbox(vm_dir), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return ""
        code, _out, _err = sim_guest.run(vm_dir, user, ["/bin/sh", "-c", line])
        if code != 0:
            raise GuestError(f"Guest program exited with non-zero exit code: {code}")
        return ""
    if cmd == "createTempfileInGuest":
        return sim_guest.temp_file(vm_dir) + "\n"
    if cmd == "fileExistsInGuest":
        return "The file exists.\n" if Path(rest[0]).is_file() else "The file does not exist.\n"
    if cmd == "deleteFileInGuest":
        if not Path(rest[0]).is_file():
            raise GuestError("A file was not found")
        Path(rest[0]).unlink()
        return ""
    if len(rest) < 2:
        raise GuestError("Invalid arguments")
    source, target = Path(rest[0]), Path(rest[1])
    if not source.is_file():
        raise GuestError("A file was not found")
    shutil.copyfile(source, target)  # guest paths are host paths in the simulated guest
    return ""


def main(cmd: str, args: list[str], user: str | None, password: str | None) -> int:
    if cmd == "getGuestIPAddress" and "-wait" in args:
        args = [a for a in args if a != "-wait"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                sys.stdout.write(command(cmd, args, user, password))
                return 0
            except GuestError as exc:
                if "not running" not in str(exc):
                    sys.stdout.write(f"Error: {exc}\n")
                    return 255
            time.sleep(0.5)
    try:
        sys.stdout.write(command(cmd, args, user, password))
    except GuestError as exc:
        sys.stdout.write(f"Error: {exc}\n")
        return 255
    return 0
