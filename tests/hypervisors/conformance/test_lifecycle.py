"""Conformance: every backend boots the test appliance and runs its whole lifecycle the same way.

Tests of what only one snapshot model can do skip by capability: ``swap_disk`` needs the
overlay chain (libvirt), the native snapshot tree needs VirtualBox or VMware.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance_vms import RunningVM, VMFactory, boot, uses_overlay_chain, wait_state

from hypervisors import qemu_img
from hypervisors.base import Capability, Hypervisor, VMState
from hypervisors.errors import InvalidState, VMExists, VMNotFound

pytestmark = pytest.mark.vm


def _require_overlay_chain(backend: Hypervisor) -> None:
    if not backend.can(Capability.OVERLAY_CHAIN):
        pytest.skip(f"{backend.name} owns its disk chain (native snapshot tree): no swap_disk")


class TestHypervisorConformance:
    def test_define_boot_and_run_a_command(self, backend: Hypervisor, running_vm: RunningVM) -> None:
        spec = running_vm.spec
        assert spec.name in backend.list_vms()
        with pytest.raises(VMExists):
            backend.define(spec)
        with running_vm.guest() as guest:
            assert guest.check_output("echo $((6 * 7))").strip() == "42"
            assert backend.state(spec.name) is VMState.RUNNING
            with pytest.raises(InvalidState):
                backend.redefine(spec.replace(memory_mib=128))
        assert "VMLOG-READY" in Path(spec.serial_log).read_text(errors="replace")  # type: ignore[arg-type]
        tops = backend.disk_tops(spec.name)
        assert set(tops) == {"system"}
        if uses_overlay_chain(backend):
            assert tops["system"] == spec.disk("system").path
        else:  # the hypervisor writes its own differencing disk, never the base it was given
            assert tops["system"] != spec.disk("system").path and tops["system"].exists()

    def test_guest_reads_a_nocloud_seed_on_its_cdrom(self, running_vm: RunningVM) -> None:
        with running_vm.guest() as guest:
            assert guest.check_output("hostname").strip() == "seeded-guest"
            assert guest.check_output("cat /data/from-seed").strip() == "seeded content"

    def test_suspend_to_disk_keeps_memory(self, backend: Hypervisor, running_vm: RunningVM) -> None:
        if not backend.can(Capability.MEMORY_SAVE):
            pytest.skip("backend cannot save memory state")
        name = running_vm.name
        with running_vm.guest() as guest:
            before = guest.check_output("echo ram-only-value-$$-$RANDOM > /tmp/marker; cat /tmp/marker")
        backend.suspend(name)
        assert backend.state(name) is VMState.SAVED
        backend.resume(name)
        assert backend.state(name) is VMState.RUNNING
        with running_vm.guest() as guest:
            assert guest.check_output("cat /tmp/marker") == before

    def test_native_snapshot_tree(self, backend: Hypervisor, running_vm: RunningVM) -> None:
        if not backend.can(Capability.NATIVE_SNAPSHOT_TREE):
            pytest.skip(f"{backend.name} has no native snapshot tree (vmlog owns its overlay chain)")
        name = running_vm.name
        with running_vm.guest() as guest:
            guest.check_output("echo first > /data/tree-a; rm -f /data/tree-b; sync")
        a = backend.snapshot_create(name, "a")  # taken live
        with running_vm.guest() as guest:
            guest.check_output("echo second > /data/tree-b; echo changed > /data/tree-a; sync")
        b = backend.snapshot_create(name, "b")
        backend.poweroff(name)
        assert backend.state(name) is VMState.STOPPED

        backend.snapshot_restore(name, a)
        with running_vm.guest() as guest:  # the guest sees the disk as it was at "a"
            assert guest.check_output("cat /data/tree-a").strip() == "first"
            assert guest.run("test -e /data/tree-b")[0] != 0
        c = backend.snapshot_create(name, "c")  # a branch: "a" now has two children
        snapshots = backend.snapshot_list(name)
        assert {s.id: s.parent_id for s in snapshots} == {a: None, b: a, c: a}
        assert {s.id: s.name for s in snapshots} == {a: "a", b: "b", c: "c"}
        assert snapshots[0].id == a  # parents come before their children

        backend.snapshot_delete(name, b)  # a leaf off the current branch, while the VM runs
        assert [(s.id, s.parent_id) for s in backend.snapshot_list(name)] == [(a, None), (c, a)]
        # merging the layers of the running branch is left to a stopped VM (the VirtualBox simulator
        # cannot merge into a base it serves to QEMU over NBD)
        backend.poweroff(name)
        backend.snapshot_delete(name, c)
        backend.snapshot_delete(name, a)
        assert backend.snapshot_list(name) == []
        with running_vm.guest() as guest:  # merging the deleted layers kept what the guest sees
            assert guest.check_output("cat /data/tree-a").strip() == "first"
            assert guest.check_output("cat /data/from-seed").strip() == "seeded content"

    def test_acpi_shutdown(self, backend: Hypervisor, running_vm: RunningVM) -> None:
        running_vm.guest().close()
        backend.shutdown(running_vm.name, timeout=120)
        assert backend.state(running_vm.name) is VMState.STOPPED
        assert "power button" in Path(running_vm.spec.serial_log).read_text(errors="replace")  # type: ignore[arg-type]

    def test_poweroff_is_idempotent_and_delete_removes_the_vm(
        self, backend: Hypervisor, vm_factory: VMFactory
    ) -> None:
        spec = vm_factory.define(vm_factory.spec())
        assert spec.name in backend.list_vms()
        assert backend.state(spec.name) is VMState.STOPPED
        backend.start(spec.name)
        assert wait_state(backend, spec.name, VMState.RUNNING) is VMState.RUNNING
        with pytest.raises(InvalidState):
            backend.start(spec.name)
        backend.poweroff(spec.name)
        assert backend.state(spec.name) is VMState.STOPPED
        backend.poweroff(spec.name)
        backend.delete(spec.name)
        assert spec.name not in backend.list_vms()
        assert spec.disk("system").path.exists()  # vmlog's files stay
        with pytest.raises(VMNotFound):
            backend.state(spec.name)

    def test_live_swap_disk_moves_writes_to_the_new_overlay(
        self, backend: Hypervisor, vm_factory: VMFactory
    ) -> None:
        _require_overlay_chain(backend)
        if not backend.can(Capability.LIVE_SNAPSHOT):
            pytest.skip("backend cannot swap disks live")
        spec = vm_factory.define(vm_factory.spec())
        old_top = spec.disk("system").path
        new_top = qemu_img.create_overlay(old_top.with_name("system-1.qcow2"), old_top, "qcow2")
        with boot(backend, spec) as guest:
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

    def test_stopped_swap_disk_redefines(self, backend: Hypervisor, vm_factory: VMFactory) -> None:
        _require_overlay_chain(backend)
        spec = vm_factory.define(vm_factory.spec())
        old_top = spec.disk("system").path
        new_top = qemu_img.create_overlay(old_top.with_name("system-1.qcow2"), old_top, "qcow2")
        backend.swap_disk(spec.name, "system", new_top)
        assert backend.disk_tops(spec.name) == {"system": new_top}
        with pytest.raises(VMNotFound):
            backend.swap_disk(spec.name, "no-such-disk", new_top)
        frozen = old_top.read_bytes()
        with boot(backend, spec) as guest:
            guest.check_output("dd if=/dev/urandom of=/data/after-swap bs=64k count=16 2>/dev/null; sync")
        backend.poweroff(spec.name)
        assert old_top.read_bytes() == frozen
        assert qemu_img.info(new_top, "qcow2")["actual-size"] > 1 << 20

    def test_unsupported_operations_say_so(self, backend: Hypervisor, vm_factory: VMFactory) -> None:
        """What a backend cannot do raises Unsupported, matching the capability it does not declare."""
        from hypervisors.errors import Unsupported

        spec = vm_factory.define(vm_factory.spec())
        if not backend.can(Capability.OVERLAY_CHAIN):
            with pytest.raises(Unsupported):
                backend.swap_disk(spec.name, "system", spec.disk("system").path)
        if not backend.can(Capability.NATIVE_SNAPSHOT_TREE):
            with pytest.raises(Unsupported):
                backend.snapshot_create(spec.name, "x")
