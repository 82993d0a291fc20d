"""Boot the test appliance under plain QEMU (TCG) and drive it through its guest agent."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmlog.context.nocloud import build_nocloud_seed
from vmlog.testappliance.agent import GuestChannel, GuestCommandFailed

pytestmark = pytest.mark.vm

USER_DATA = """\
#cloud-config
hostname: seeded-host
write_files:
  - path: /data/from-seed.txt
    content: |
      hello from the seed
      second line
    permissions: '0600'
  - path: /run/inline.txt
    content: "inline value"
runcmd:
  - echo runcmd-ran > /run/runcmd.txt
  - [ sh, -c, "echo argv-ran 'with  quotes' > /run/argv.txt" ]
"""


@dataclass
class BootedGuest:
    process: subprocess.Popen[bytes]
    console: Path
    agent: GuestChannel
    monitor: Path
    overlay: Path

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_console(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.console_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} not on the console; console:\n{self.console_text()[-3000:]}")
            time.sleep(0.1)

    def monitor_command(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.monitor))
            sock.sendall(command.encode() + b"\n")
            time.sleep(0.2)

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


@pytest.fixture
def boot_guest(test_appliance_image: Path, tmp_path: Path) -> Iterator[BootedGuest]:
    """Boot a qcow2 overlay of the appliance with a NoCloud seed on an IDE CD-ROM; always kill QEMU."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    overlay = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(test_appliance_image), str(overlay)],
        check=True,
    )
    seed = build_nocloud_seed(
        tmp_path / "seed.iso",
        meta_data="instance-id: iid-test-1\nlocal-hostname: meta-host\n",
        user_data=USER_DATA,
    )
    console = tmp_path / "console.log"
    agent_sock = tmp_path / "agent.sock"
    monitor = tmp_path / "mon.sock"
    # The Debian cloud kernel has no AHCI driver: the seed goes on the IDE CD-ROM (as VirtualBox and
    # VMware attach it by default), which ata_piix drives.
    cmd = [
        qemu, "-accel", "tcg", "-m", "256", "-nographic", "-nodefaults",
        "-drive", f"file={overlay},if=virtio,format=qcow2",
        "-drive", f"file={seed},if=ide,media=cdrom,format=raw,readonly=on",
        "-serial", f"file:{console}",
        "-serial", f"unix:{agent_sock},server=on,wait=off",
        "-monitor", f"unix:{monitor},server=on,wait=off",
        "-nic", "user,model=virtio-net-pci",
    ]  # fmt: skip
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    guest = BootedGuest(process, console, GuestChannel(agent_sock), monitor, overlay)
    try:
        yield guest
    finally:
        guest.agent.close()
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def test_guest_runs_commands_applies_the_seed_and_keeps_data(boot_guest: BootedGuest) -> None:
    boot_guest.wait_console("VMLOG-READY", timeout=240)
    agent = boot_guest.agent
    agent.wait_ready(timeout=60)
    assert agent.version == "1.0"
    assert "VMLOG-READY hostname=seeded-host" in boot_guest.console_text()

    release = agent.check_output("uname -r").strip()
    assert release.endswith("-cloud-amd64")
    assert agent.check_output("hostname").strip() == "seeded-host"
    assert agent.check_output("cat /data/from-seed.txt") == "hello from the seed\nsecond line\n"
    assert agent.check_output("stat -c %a /data/from-seed.txt").strip() == "600"
    assert agent.check_output("cat /run/inline.txt") == "inline value"
    assert agent.check_output("cat /run/runcmd.txt /run/argv.txt") == "runcmd-ran\nargv-ran with  quotes\n"
    assert "instance-id: iid-test-1" in agent.check_output("cat /run/vmlog-seed.log")
    assert " /data ext4 rw" in agent.check_output("cat /proc/mounts")

    # output with every byte value and no trailing newline survives the base64 round trip
    assert agent.run("printf 'a\\tb\\nc'; echo err >&2; exit 3") == (3, "a\tb\ncerr\n")
    with pytest.raises(GuestCommandFailed) as failure:
        agent.check_output("ls /no/such/path")
    assert failure.value.command_exit_code != 0 and "no/such/path" in failure.value.output

    # garbage on the agent's line is ignored; the agent keeps answering
    sock = agent._connect()
    sock.sendall(b"\x00\xffnonsense\nRUN\nRUN x !!!notbase64\nOUT 1 2 3\n")
    agent.check_output("echo still-alive > /data/written-by-test.txt && sync")
    assert agent.check_output("cat /data/written-by-test.txt") == "still-alive\n"

    agent.poweroff()
    assert boot_guest.wait_exit(timeout=120) == 0
    # what the guest wrote to /data landed in the VM's own overlay, on a cleanly unmounted ext4
    assert _read_data_file(boot_guest.overlay, "/written-by-test.txt") == "still-alive\n"


def _read_data_file(overlay: Path, name: str) -> str:
    """Read a file from the data partition of a (powered-off) disk, without mounting anything."""
    raw = overlay.with_suffix(".raw")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(overlay), str(raw)], check=True)
    table = subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True, check=True).stdout
    start = json.loads(table)["partitiontable"]["partitions"][1]["start"]
    part = raw.with_suffix(".ext4")
    with raw.open("rb") as src, part.open("wb") as dst:
        src.seek(start * 512)
        shutil.copyfileobj(src, dst)
    fsck = subprocess.run(["e2fsck", "-n", str(part)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    out = subprocess.run(["debugfs", "-R", f"cat {name}", str(part)], capture_output=True, text=True, check=True)
    return out.stdout


def test_acpi_power_button_powers_the_guest_off(boot_guest: BootedGuest) -> None:
    boot_guest.wait_console("VMLOG-READY", timeout=240)
    boot_guest.agent.wait_ready(timeout=60)
    boot_guest.agent.check_output("echo before-acpi > /data/acpi.txt")
    boot_guest.agent.close()
    boot_guest.monitor_command("system_powerdown")
    assert boot_guest.wait_exit(timeout=120) == 0
    console = boot_guest.console_text()
    assert "ACPI power button pressed" in console
    assert "shutting down" in console
