"""The engine under the simulators: boots a simulated VM's disks for real with QEMU (TCG) and drives it over QMP.

VirtualBox and VMware cannot run here, so ``VBoxManage``/``vboxapi``/``vmrun`` simulators hand their VMs to
QEMU: the disks the backends produce are booted, the guest's serial ports go where the VM's settings say
(console to a file, the agent channel to a Unix socket the hypervisor listens on), ACPI shutdown presses a
real power button, and "save state" writes the real RAM with QEMU's migrate-to-file.

Deliberate deviations from the real hypervisors, so the test appliance (virtio drivers, no AHCI or
LSI Logic) can run: every hard disk is presented to the guest as virtio-blk and the NIC as virtio-net,
whatever controller or adapter type the VM's settings name. CD-ROMs on an IDE controller (VirtualBox's
PIIX4, VMware's ``ide0``/``ide1``) are real IDE CD-ROMs on QEMU's PIIX controller at the same channel
and unit; CD-ROMs on other controllers fall back to read-only virtio disks. Shared folders are
recorded, not exported to the guest.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DriveSpec:
    """One drive; ``bus="ide"`` makes it an IDE CD-ROM at ``ide_index`` (channel * 2 + unit)."""

    path: Path
    fmt: str
    readonly: bool = False
    bus: str = "virtio"
    ide_index: int = 2


@dataclass
class BootSpec:
    memory_mib: int
    cpus: int
    drives: list[DriveSpec]
    serial_log: Path | None = None
    channel_socket: Path | None = None
    forwards: list[tuple[str, str, int, int]] = field(default_factory=list)  # proto, host addr, host port, guest
    incoming: Path | None = None


class QmpError(RuntimeError):
    pass


class QemuVM:
    """One simulated VM's QEMU process; all its runtime files live in ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        # Unix socket paths must stay under 108 bytes: sockets live in a short directory of their own
        digest = hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:12]
        self.socket_dir = Path(tempfile.gettempdir()) / f"vmlsim-{digest}"
        self.qmp_path = self.socket_dir / "qmp.sock"
        self.pid_path = self.run_dir / "qemu.pid"

    # -- process ---------------------------------------------------------------------------------
    def pid(self) -> int | None:
        return _live_pid(self.pid_path)

    def helper_pids(self) -> list[int]:
        """Live ``qemu-nbd`` servers of this VM's disks (see :meth:`_drive_args`)."""
        return [pid for path in sorted(self.run_dir.glob("nbd*.pid")) if (pid := _live_pid(path)) is not None]

    def alive(self) -> bool:
        """QEMU runs, or a disk server still holds a disk (it exits once QEMU let go and it flushed)."""
        return self.pid() is not None or bool(self.helper_pids())

    def boot(self, spec: BootSpec) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.qmp_path.unlink(missing_ok=True)
        self.pid_path.unlink(missing_ok=True)
        accel = os.environ.get("VMLOG_SIM_ACCEL", "tcg")
        args = [
            "qemu-system-x86_64",
            "-name", self.run_dir.name,
            "-machine", "pc",
            "-accel", accel,
            "-m", str(spec.memory_mib),
            "-smp", str(spec.cpus),
            "-nographic", "-nodefaults", "-no-user-config",
            "-display", "none",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-daemonize", "-pidfile", str(self.pid_path),
        ]
        for path in self.run_dir.glob("nbd*"):
            path.unlink(missing_ok=True)
        for index, drive in enumerate(spec.drives):
            if drive.bus == "ide":
                opts = (f"file={drive.path},format={drive.fmt},if=ide,media=cdrom,index={drive.ide_index},"
                        f"id=drive{index},readonly=on")
                args += ["-drive", opts]
            else:
                try:
                    args += self._drive_args(index, drive)
                except BaseException:
                    self._kill_helpers()
                    raise
        args += ["-boot", "order=c"]
        serial_log = spec.serial_log or (self.run_dir / "console.log")
        args += ["-chardev", f"file,id=console,path={serial_log}", "-serial", "chardev:console"]
        if spec.channel_socket is not None:
            Path(spec.channel_socket).unlink(missing_ok=True)
            args += [
                "-chardev", f"socket,id=channel,path={spec.channel_socket},server=on,wait=off",
                "-serial", "chardev:channel",
            ]
        netdev = "user,id=net0"
        for proto, addr, host_port, guest_port in spec.forwards:
            netdev += f",hostfwd={proto}:{addr}:{host_port}-:{guest_port}"
        args += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]
        if spec.incoming is not None:
            args += ["-incoming", f"exec:cat {_shell_quote(str(spec.incoming))}"]
        try:
            self._start(args, spec)
        except BaseException:
            self._kill_helpers()  # a disk server that never got its QEMU would wait forever
            raise

    def _kill_helpers(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        for helper in self.helper_pids():
            os.kill(helper, signal.SIGTERM)

    def _start(self, args: list[str], spec: BootSpec) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise QmpError(proc.stderr.strip() or f"qemu exited with {proc.returncode}")
        self._wait_for(lambda: self.qmp_path.exists(), 30, "QMP socket")
        if spec.incoming is not None:
            # the state was written from a stopped CPU, so QEMU loads it paused: continue once it is in
            self._wait_for(lambda: self.status() in ("paused", "running"), 120, "the memory state to load")
            if self.status() == "paused":
                self.cont()

    def _drive_args(self, index: int, drive: DriveSpec) -> list[str]:
        """A virtio drive on the image chain at ``drive.path``.

        QEMU refuses to save the memory of a VM with a VDI or VMDK image open (its drivers for them are
        migration blockers), so the topmost layer of such a format, and everything below it, is served
        by a ``qemu-nbd`` of its own and QEMU opens only the qcow2/raw layers above it, whose on-disk
        backing names stay what the simulated hypervisor wrote.
        """
        chain = json.loads(subprocess.run(
            ["qemu-img", "info", "--backing-chain", "--output=json", "-f", drive.fmt, str(drive.path)],
            capture_output=True, text=True, check=True).stdout)
        common = f"if=virtio,id=drive{index},cache=writeback" + (",readonly=on" if drive.readonly else "")
        served = next((k for k, layer in enumerate(chain) if layer["format"] not in ("qcow2", "raw")), None)
        if served is None:
            return ["-drive", f"file={drive.path},format={drive.fmt},{common}"]
        layer = chain[served]
        sock = self.socket_dir / f"nbd{index}.sock"
        sock.unlink(missing_ok=True)
        nbd = ["qemu-nbd", "--fork", "--pid-file", str(self.run_dir / f"nbd{index}.pid"), "-k", str(sock),
               "-f", layer["format"], "--cache=writeback"]
        if served > 0 or drive.readonly:
            nbd.append("--read-only")
        proc = subprocess.run([*nbd, layer["filename"]], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise QmpError(f"qemu-nbd could not serve {layer['filename']}: {proc.stderr.strip()}")
        if served == 0:
            return ["-drive", f"driver=raw,file.driver=nbd,file.server.type=unix,file.server.path={sock},{common}"]
        node = f"nbd{index}"
        args = ["-blockdev", f"driver=nbd,server.type=unix,server.path={sock},node-name={node},read-only=on"]
        opts, prefix = [], ""
        for upper in chain[:served]:
            opts.append(f"{prefix}driver={upper['format']},{prefix}file.filename={upper['filename']}")
            prefix += "backing."
        opts.append(f"{prefix.removesuffix('.')}={node}")  # the deepest qcow2 layer's backing: the server
        return [*args, "-drive", ",".join([*opts, common])]

    # -- QMP -------------------------------------------------------------------------------------
    def qmp(self, command: str, **arguments: object) -> object:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(60)
            sock.connect(str(self.qmp_path))
            reader = sock.makefile("rb")
            json.loads(reader.readline())  # greeting
            sock.sendall(json.dumps({"execute": "qmp_capabilities"}).encode() + b"\n")
            self._read_reply(reader)
            message: dict[str, object] = {"execute": command}
            if arguments:
                message["arguments"] = arguments
            sock.sendall(json.dumps(message).encode() + b"\n")
            return self._read_reply(reader)

    @staticmethod
    def _read_reply(reader) -> object:  # type: ignore[no-untyped-def]
        while True:
            line = reader.readline()
            if not line:
                raise QmpError("QEMU closed the monitor")
            reply = json.loads(line)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QmpError(reply["error"].get("desc", str(reply["error"])))

    def status(self) -> str:
        """QEMU's run state (``running``, ``paused``, ``postmigrate`` ...) or ``off``."""
        if not self.alive():
            return "off"
        try:
            return str(self.qmp("query-status")["status"])  # type: ignore[index]
        except (OSError, QmpError):
            return "off" if not self.alive() else "unknown"

    # -- operations ------------------------------------------------------------------------------
    def power_button(self) -> None:
        self.qmp("system_powerdown")

    def kill(self) -> None:
        pid = self.pid()
        if pid is None:
            self._wait_for(lambda: not self.alive(), 30, "the disk servers to exit")
            return
        try:
            self.qmp("quit")
        except (OSError, QmpError):
            os.kill(pid, signal.SIGKILL)
        self._wait_for(lambda: not self.alive(), 30, "QEMU and its disk servers to exit")

    def wait_off(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.2)
        return False

    def pause(self) -> None:
        self.qmp("stop")

    def cont(self) -> None:
        self.qmp("cont")

    def save_memory(self, path: Path, *, keep_running: bool) -> None:
        """Write the VM's RAM and device state to ``path`` (QEMU migrate-to-file)."""
        self.qmp("stop")
        self.qmp("migrate", uri=f"exec:cat > {_shell_quote(str(path))}")

        def done() -> bool:
            info = self.qmp("query-migrate")
            status = info.get("status") if isinstance(info, dict) else None
            if status == "failed":
                raise QmpError(f"saving the memory state failed: {info}")
            return status == "completed"

        self._wait_for(done, 300, "memory state to be written")
        if keep_running:
            self.qmp("cont")
        else:
            self.kill()

    def snapshot_drive(self, index: int, new_top: Path, fmt: str) -> None:
        """Freeze drive ``index``'s current top and continue writing into ``new_top`` (live)."""
        self.qmp(
            "blockdev-snapshot-sync", device=f"drive{index}", **{"snapshot-file": str(new_top)},
            format=fmt, mode="existing",
        )

    def stream_into_top(self, index: int, base: Path | None) -> None:
        """Pull the data of the layers above ``base`` into drive ``index``'s top (live merge)."""
        args: dict[str, object] = {"device": f"drive{index}", "job-id": f"stream{index}"}
        if base is not None:
            args["base"] = str(base)
        self.qmp("block-stream", **args)

        def finished() -> bool:
            jobs = self.qmp("query-block-jobs")
            return not jobs

        self._wait_for(finished, 300, "live merge")

    @staticmethod
    def _wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        raise QmpError(f"timed out waiting for {what}")


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _live_pid(pid_path: Path) -> int | None:
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    try:  # a zombie is not a running process
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
    except OSError:
        return None
    return pid


def kill_all_under(root: Path) -> list[int]:
    """Kill every simulated VM's QEMU and disk server whose pid file lies under ``root``; return the pids.

    Only processes whose command line names their own run directory are touched, so a pid reused by
    an unrelated process after QEMU exited is left alone.
    """
    killed = []
    for pid_file in Path(root).glob("**/.sim-run/*.pid"):
        pid = _live_pid(pid_file)
        if pid is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(pid_file.parent).encode() not in cmdline:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed
