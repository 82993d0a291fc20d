"""Conformance: every backend boots the test appliance and runs its whole lifecycle the same way."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.base import Capability, Hypervisor, VMState
from hypervisors.errors import InvalidState, VMExists, VMNotFound
from vmlog.testappliance.agent import GuestChannel

BOOT_TIMEOUT = 180.0

pytestmark = pytest.mark.vm


def _boot(hv: Hypervisor, spec) -> GuestChannel:  # type: ignore[no-untyped-def]
    hv.start(spec.name)
    channel = GuestChannel(spec.channel_socket)
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def _wait_state(hv: Hypervisor, name: str, wanted: VMState, timeout: float = 60.0) -> VMState:
    deadline = time.monotonic() + timeout
    state = hv.state(name)
    while state is not wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        state = hv.state(name)
    return state


class TestHypervisorConformance:
    def test_define_boot_and_run_a_command(self, backend, vm_factory) -> None:  # type: ignore[no-untyped-def]
        spec = vm_factory.define(vm_factory.spec())
        assert spec.name in backend.list_vms()
        assert backend.state(spec.name) is VMState.STOPPED
        with pytest.raises(VMExists):
            backend.define(spec)
        with _boot(backend, spec) as guest:
            assert guest.check_output("echo $((6 * 7))").strip() == "42"
            assert backend.state(spec.name) is VMState.RUNNING
            with pytest.raises(InvalidState):
                backend.redefine(spec.replace(memory_mib=128))
        assert "VMLOG-READY" in Path(spec.serial_log).read_text(errors="replace")
        assert backend.disk_tops(spec.name) == {"system": spec.disk("system").path}

    def test_suspend_to_disk_keeps_memory(self, backend, vm_factory) -> None:  # type: ignore[no-untyped-def]
        if not backend.can(Capability.MEMORY_SAVE):
            pytest.skip("backend cannot save memory state")
        spec = vm_factory.define(vm_factory.spec())
        with _boot(backend, spec) as guest:
            guest.check_output("echo ram-only-value-$$ > /tmp/marker; cat /tmp/marker")
            before = guest.check_output("cat /tmp/marker")
        backend.suspend(spec.name)
        assert backend.state(spec.name) is VMState.SAVED
        backend.resume(spec.name)
        assert backend.state(spec.name) is VMState.RUNNING
        with GuestChannel(spec.channel_socket) as guest:
            guest.wait_ready(60)
            assert guest.check_output("cat /tmp/marker") == before

    def test_live_swap_disk_moves_writes_to_the_new_overlay(  # type: ignore[no-untyped-def]
        self, backend, vm_factory
    ) -> None:
        if not backend.can(Capability.LIVE_SNAPSHOT):
            pytest.skip("backend cannot swap disks live")
        spec = vm_factory.define(vm_factory.spec())
        old_top = spec.disk("system").path
        new_top = qemu_img.create_overlay(old_top.with_name("system-1.qcow2"), old_top, "qcow2")
        with _boot(backend, spec) as guest:
            guest.check_output("echo before > /data/file-a; sync")
            backend.swap_disk(spec.name, "system", new_top)
            assert backend.disk_tops(spec.name) == {"system": new_top}
            frozen = old_top.read_bytes()
            guest.check_output("dd if=/dev/urandom of=/data/file-b bs=64k count=16 2>/dev/null; sync")
            assert guest.check_output("cat /data/file-a").strip() == "before"
            assert guest.check_output("ls /data/file-b").strip() == "/data/file-b"
        assert old_top.read_bytes() == frozen  # the old layer stopped changing
        assert new_top.stat().st_size > 1 << 20  # the new one took the writes
        backend.poweroff(spec.name)
        assert backend.disk_tops(spec.name) == {"system": new_top}  # the definition follows the swap

    def test_stopped_swap_disk_redefines(self, backend, vm_factory) -> None:  # type: ignore[no-untyped-def]
        spec = vm_factory.define(vm_factory.spec())
        old_top = spec.disk("system").path
        new_top = qemu_img.create_overlay(old_top.with_name("system-1.qcow2"), old_top, "qcow2")
        backend.swap_disk(spec.name, "system", new_top)
        assert backend.disk_tops(spec.name) == {"system": new_top}
        with pytest.raises(VMNotFound):
            backend.swap_disk(spec.name, "no-such-disk", new_top)
        frozen = old_top.read_bytes()
        with _boot(backend, spec) as guest:
            guest.check_output("dd if=/dev/urandom of=/data/after-swap bs=64k count=16 2>/dev/null; sync")
        backend.poweroff(spec.name)
        assert old_top.read_bytes() == frozen
        assert qemu_img.info(new_top, "qcow2")["actual-size"] > 1 << 20

    def test_acpi_shutdown(self, backend, vm_factory) -> None:  # type: ignore[no-untyped-def]
        spec = vm_factory.define(vm_factory.spec())
        with _boot(backend, spec):
            pass
        backend.shutdown(spec.name, timeout=120)
        assert backend.state(spec.name) is VMState.STOPPED
        assert "power button" in Path(spec.serial_log).read_text(errors="replace")

    def test_poweroff_is_idempotent_and_delete_removes_the_vm(  # type: ignore[no-untyped-def]
        self, backend, vm_factory
    ) -> None:
        spec = vm_factory.define(vm_factory.spec())
        backend.start(spec.name)
        assert _wait_state(backend, spec.name, VMState.RUNNING) is VMState.RUNNING
        backend.poweroff(spec.name)
        assert backend.state(spec.name) is VMState.STOPPED
        backend.poweroff(spec.name)
        backend.delete(spec.name)
        assert spec.name not in backend.list_vms()
        assert spec.disk("system").path.exists()  # vmlog's files stay
        with pytest.raises(VMNotFound):
            backend.state(spec.name)

    def test_guest_reads_a_nocloud_seed_on_its_cdrom(self, backend, vm_factory) -> None:  # type: ignore[no-untyped-def]
        from hypervisors.spec import DiskSpec
        from vmlog.context.nocloud import build_nocloud_seed

        probe_spec = vm_factory.spec()
        seed = build_nocloud_seed(
            Path(probe_spec.serial_log).with_name("seed.iso"),
            meta_data="instance-id: conformance-1\nlocal-hostname: seeded-guest\n",
            user_data="#cloud-config\nwrite_files:\n  - path: /data/from-seed\n    content: seeded content\n",
        )
        cdrom = DiskSpec(path=seed, format="raw", device="cdrom", readonly=True, label="seed")
        spec = vm_factory.define(probe_spec.replace(disks=(*probe_spec.disks, cdrom)))
        with _boot(backend, spec) as guest:
            assert guest.check_output("hostname").strip() == "seeded-guest"
            assert guest.check_output("cat /data/from-seed").strip() == "seeded content"
