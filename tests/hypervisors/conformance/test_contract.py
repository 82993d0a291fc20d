"""Conformance without a guest: what every backend does with VMs it defines but does not boot.

Runs on every backend of the suite, the libvirt test driver (``kvm-test``) and the simulators
included, so it needs no daemon, no root and no test appliance. Optional operations are checked
against the capability that announces them: declared means it works, undeclared means ``Unsupported``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from conformance_vms import VMFactory, patterned_copy, write_pattern

from hypervisors import qemu_img
from hypervisors.base import Capability, Hypervisor, VMState
from hypervisors.errors import HypervisorError, InvalidState, Unsupported, VMExists, VMNotFound
from hypervisors.spec import SharedFolder

MIB = 1 << 20


def test_define_list_state_and_delete(backend: Hypervisor, blank_vms: VMFactory) -> None:
    spec = blank_vms.define(blank_vms.spec())
    assert backend.exists(spec.name)
    assert spec.name in backend.list_vms()
    assert backend.state(spec.name) is VMState.STOPPED
    with pytest.raises(VMExists):
        backend.define(spec)
    backend.delete(spec.name)
    assert not backend.exists(spec.name)
    assert spec.name not in backend.list_vms()
    with pytest.raises(VMNotFound):
        backend.state(spec.name)
    assert spec.disk("system").path.exists()  # vmlog's files stay


def test_operations_on_an_unknown_vm_raise_vm_not_found(backend: Hypervisor) -> None:
    name = f"vmltest-missing-{secrets.token_hex(4)}"
    assert not backend.exists(name)
    for operation in (backend.state, backend.start, backend.poweroff, backend.delete):
        with pytest.raises(VMNotFound):
            operation(name)


def test_state_changes_without_a_guest(backend: Hypervisor, blank_vms: VMFactory, boots_guests: bool) -> None:
    """Start, managed save, resume, shutdown and power off on a backend that only records the state."""
    if boots_guests:
        pytest.skip("this backend boots a real guest: the vm tests cover its lifecycle")
    spec = blank_vms.define(blank_vms.spec())
    backend.start(spec.name)
    assert backend.state(spec.name) is VMState.RUNNING
    with pytest.raises(InvalidState):
        backend.start(spec.name)
    backend.suspend(spec.name)
    assert backend.state(spec.name) is VMState.SAVED
    backend.resume(spec.name)
    assert backend.state(spec.name) is VMState.RUNNING
    backend.shutdown(spec.name, timeout=10)
    assert backend.state(spec.name) is VMState.STOPPED
    with pytest.raises(InvalidState):
        backend.resume(spec.name)
    backend.start(spec.name)
    backend.poweroff(spec.name)
    backend.poweroff(spec.name)  # idempotent
    assert backend.state(spec.name) is VMState.STOPPED


def test_delete_removes_a_running_and_a_saved_vm(backend: Hypervisor, blank_vms: VMFactory,
                                                 boots_guests: bool) -> None:
    if boots_guests:
        pytest.skip("this backend boots a real guest: the vm tests cover its lifecycle")
    running, saved = blank_vms.define(blank_vms.spec()), blank_vms.define(blank_vms.spec())
    backend.start(running.name)
    backend.start(saved.name)
    backend.suspend(saved.name)
    for spec in (running, saved):
        backend.delete(spec.name)
        assert not backend.exists(spec.name)
    backend.define(saved)  # nothing of the old VM (its saved memory) stands in the way
    assert backend.state(saved.name) is VMState.STOPPED


def test_stopped_swap_disk_moves_the_top(backend: Hypervisor, blank_vms: VMFactory) -> None:
    if not backend.can(Capability.OVERLAY_CHAIN):
        pytest.skip(f"{backend.name} owns its disk chain")
    spec = blank_vms.define(blank_vms.spec())
    old_top = spec.disk("system").path
    new_top = qemu_img.create_overlay(old_top.with_name("system-1.qcow2"), old_top, "qcow2")
    backend.swap_disk(spec.name, "system", new_top)
    assert backend.disk_tops(spec.name) == {"system": new_top}
    with pytest.raises(VMNotFound):
        backend.swap_disk(spec.name, "no-such-disk", new_top)


def test_undeclared_operations_raise_unsupported(backend: Hypervisor, blank_vms: VMFactory, tmp_path: Path) -> None:
    spec = blank_vms.define(blank_vms.spec())
    folder = SharedFolder("extra", tmp_path)
    if not backend.can(Capability.SHARED_FOLDER_HOTPLUG):
        with pytest.raises(Unsupported, match=backend.name):
            backend.attach_shared_folder(spec.name, folder)
        with pytest.raises(Unsupported, match=backend.name):
            backend.detach_shared_folder(spec.name, folder)
    if not backend.can(Capability.SNAPSHOT_DISKS):
        with pytest.raises(Unsupported, match=backend.name):
            backend.snapshot_disks(spec.name, "some-snapshot", tmp_path)
    if not backend.can(Capability.NATIVE_SNAPSHOT_TREE):
        with pytest.raises(Unsupported):
            backend.snapshot_create(spec.name, "x")
    if not backend.can(Capability.OVERLAY_CHAIN):
        with pytest.raises(Unsupported):
            backend.swap_disk(spec.name, "system", spec.disk("system").path)


def test_shared_folder_hotplug_needs_a_running_vm(backend: Hypervisor, blank_vms: VMFactory, tmp_path: Path) -> None:
    if not backend.can(Capability.SHARED_FOLDER_HOTPLUG):
        pytest.skip(f"{backend.name} cannot change the shares of a running VM")
    spec = blank_vms.define(blank_vms.spec())
    with pytest.raises(InvalidState):
        backend.attach_shared_folder(spec.name, SharedFolder("extra", tmp_path))
    with pytest.raises(VMNotFound):
        backend.attach_shared_folder(f"vmltest-missing-{secrets.token_hex(4)}", SharedFolder("extra", tmp_path))


def test_snapshot_disks_hand_over_what_each_snapshot_froze(
    backend: Hypervisor, blank_vms: VMFactory, blank_image: Path, tmp_path: Path
) -> None:
    if not backend.can(Capability.SNAPSHOT_DISKS):
        pytest.skip(f"{backend.name} hands over no snapshot disks")
    spec = blank_vms.define(blank_vms.spec())
    first = backend.snapshot_create(spec.name, "first")
    write_pattern(backend, spec.name, "system", 2 * MIB, 0x5A, tmp_path)
    second = backend.snapshot_create(spec.name, "second")
    write_pattern(backend, spec.name, "system", 3 * MIB, 0xA5, tmp_path)  # the live disk moves on
    expected = {
        first: blank_image,
        second: patterned_copy(blank_image, tmp_path / "second.raw", [(2 * MIB, 0x5A)]),
    }
    work = tmp_path / "work"
    work.mkdir()
    for snapshot_id, content in expected.items():
        disks = backend.snapshot_disks(spec.name, snapshot_id, work)
        assert set(disks) == {"system"}
        disk = disks["system"]
        assert disk.path.is_file()
        assert (work in disk.path.parents) is disk.flattened  # a copy lives in the work dir, a delta in place
        assert qemu_img.compare(disk.path, disk.format, content, "raw"), snapshot_id
    with pytest.raises(HypervisorError):
        backend.snapshot_disks(spec.name, "no-such-snapshot", work)


def test_memory_images_only_where_declared(backend: Hypervisor, blank_vms: VMFactory, tmp_path: Path) -> None:
    if backend.can(Capability.MEMORY_IMAGE):
        pytest.skip("the vm tests save and restore real memory images")
    spec = blank_vms.define(blank_vms.spec())
    with pytest.raises(Unsupported):
        backend.save_memory_image(spec.name, tmp_path / "memory.img")
    with pytest.raises(Unsupported):
        backend.restore_memory_image(spec, tmp_path / "memory.img")
