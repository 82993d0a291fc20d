"""The VMs of the conformance suite: how each backend gets its test-appliance disk, and the shared running VM."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import simulated_backends

from hypervisors import qemu_img
from hypervisors.base import Hypervisor, SnapshotModel, VMState
from hypervisors.errors import HypervisorError
from hypervisors.spec import DiskSpec, NicSpec, VMSpec
from vmlog.testappliance.agent import GuestChannel

BOOT_TIMEOUT = 180.0


def uses_overlay_chain(hv: Hypervisor) -> bool:
    return hv.snapshot_model is SnapshotModel.OVERLAY_CHAIN and hv.native_disk_format == "qcow2"


class VMFactory:
    """Makes uniquely named VMs booting the test appliance.

    Overlay-chain backends get a fresh qcow2 overlay on the raw image (vmlog owns the chain).
    Native-tree backends get the image converted once into their own format (``import_disk``) and
    shared by every VM, as projects share a base appliance: the hypervisor writes its own
    differencing disk on top (and VirtualBox refuses two registered copies of one base UUID).
    """

    _native_bases: dict[tuple[str, str, str], Path] = {}

    def __init__(self, hv: Hypervisor, image: Path, workdir: Path) -> None:
        self.hv = hv
        self.image = image
        self.workdir = workdir
        self.created: list[str] = []

    def system_disk(self, vmdir: Path) -> DiskSpec:
        if uses_overlay_chain(self.hv):
            top = qemu_img.create_overlay(vmdir / "system-0.qcow2", self.image, "raw", cluster_size=65536)
            return DiskSpec(path=top, format="qcow2", label="system")
        fmt = self.hv.native_disk_format
        key = (self.hv.name, fmt, str(self.image))
        base = self._native_bases.get(key)
        if base is None or not base.exists():
            base_dir = simulated_backends.simulated_host() / "bases"  # lives as long as the test process
            base_dir.mkdir(parents=True, exist_ok=True)
            base = self.hv.import_disk(self.image, "raw", base_dir / f"{self.image.stem}-{self.hv.name}.{fmt}").path
            self._native_bases[key] = base
        return DiskSpec(path=base, format=fmt, label="system")  # type: ignore[arg-type]

    def spec(self, **changes: object) -> VMSpec:
        name = f"vmltest-{secrets.token_hex(4)}"
        vmdir = self.workdir / name
        vmdir.mkdir(parents=True)
        spec = VMSpec(
            name=name,
            cpus=1,
            memory_mib=256,
            disks=(self.system_disk(vmdir),),
            nics=(NicSpec(),),
            serial_log=vmdir / "serial.log",
            channel_socket=vmdir / "agent.sock",
        )
        return spec.replace(**changes) if changes else spec

    def define(self, spec: VMSpec) -> VMSpec:
        self.created.append(spec.name)
        self.hv.define(spec)
        return spec

    def cleanup(self) -> None:
        for name in self.created:
            try:
                if self.hv.exists(name):
                    self.hv.delete(name)
            except HypervisorError:
                pass


def boot(hv: Hypervisor, spec: VMSpec) -> GuestChannel:
    """Start the VM and return a channel to its guest agent once it answers."""
    hv.start(spec.name)
    channel = GuestChannel(spec.channel_socket)  # type: ignore[arg-type]
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def wait_state(hv: Hypervisor, name: str, wanted: VMState, timeout: float = 60.0) -> VMState:
    deadline = time.monotonic() + timeout
    state = hv.state(name)
    while state is not wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        state = hv.state(name)
    return state


SEED_META_DATA = "instance-id: conformance-1\nlocal-hostname: seeded-guest\n"
SEED_USER_DATA = "#cloud-config\nwrite_files:\n  - path: /data/from-seed\n    content: seeded content\n"


class RunningVM:
    """The VM shared by one backend's tests: the test appliance with a NoCloud seed on its CD-ROM."""

    def __init__(self, hv: Hypervisor, spec: VMSpec) -> None:
        self.hv = hv
        self.spec = spec
        self.name = spec.name

    def guest(self) -> GuestChannel:
        """A channel to the running guest, after starting or resuming the VM if it is not running."""
        state = self.hv.state(self.name)
        if state is VMState.SAVED or state is VMState.PAUSED:
            self.hv.resume(self.name)
        elif state is not VMState.RUNNING:
            self.hv.start(self.name)
        channel = GuestChannel(self.spec.channel_socket)  # type: ignore[arg-type]
        channel.wait_ready(BOOT_TIMEOUT)
        return channel


def write_pattern(hv: Hypervisor, vm: str, label: str, offset: int, byte: int, work: Path) -> None:
    """Make 64 KiB at ``offset`` of the stopped VM's disk ``label`` hold ``byte``, as a guest writing would.

    qemu-io writes the top the backend reports; only VirtualBox writes its differencing images, so
    there the disk is exported, changed and loaded back through the backend.
    """
    command = f"write -P {byte:#x} {offset} 64k"
    if hv.native_disk_format == "vdi":
        flat = hv.export_disk(vm, label, work / f"{vm}-{label}-{byte:x}.qcow2")
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(flat)], check=True, capture_output=True)
        hv.load_disk(vm, label, flat, "qcow2")  # type: ignore[attr-defined]
        return
    top = hv.disk_tops(vm)[label]
    subprocess.run(["qemu-io", "-f", hv.native_disk_format, "-c", command, str(top)], check=True,
                   capture_output=True)


def patterned_copy(image: Path, dest: Path, writes: list[tuple[int, int]]) -> Path:
    """A raw copy of ``image`` with 64 KiB of ``byte`` at each ``(offset, byte)``: what a disk should show."""
    shutil.copyfile(image, dest)
    with dest.open("r+b") as f:
        for offset, byte in writes:
            f.seek(offset)
            f.write(bytes([byte]) * 65536)
    return dest
