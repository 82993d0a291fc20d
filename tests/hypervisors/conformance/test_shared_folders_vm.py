"""Conformance: a shared folder is added to a running guest and removed again, without a reboot.

Only for backends that declare ``Capability.SHARED_FOLDER_HOTPLUG`` (libvirt on QEMU: virtiofs); the
others raise ``Unsupported``, which ``test_contract.py`` checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance_vms import RunningVM, VMFactory, boot

from hypervisors.base import Capability, Hypervisor
from hypervisors.errors import OperationFailed
from hypervisors.spec import SharedFolder

pytestmark = pytest.mark.vm


def _require_hotplug(backend: Hypervisor) -> None:
    if not backend.can(Capability.SHARED_FOLDER_HOTPLUG):
        pytest.skip(f"{backend.name} cannot change the shares of a running VM")


def test_a_share_comes_and_goes_while_the_guest_runs(backend: Hypervisor, vm_factory: VMFactory,
                                                     tmp_path: Path) -> None:
    _require_hotplug(backend)
    at_boot, extra = tmp_path / "at-boot", tmp_path / "extra"
    for folder in (at_boot, extra):
        folder.mkdir()
    (extra / "hello.txt").write_text("from the host\n")
    spec = vm_factory.define(vm_factory.spec(shared_folders=(SharedFolder("at-boot", at_boot),)))
    share = SharedFolder("extra", extra)
    with boot(backend, spec) as guest:  # a VM with one share at boot has the shared memory virtiofs needs
        backend.attach_shared_folder(spec.name, share)
        mount = "mkdir -p /mnt/extra && mount -t virtiofs extra /mnt/extra"
        assert guest.check_output(f"{mount} && cat /mnt/extra/hello.txt").strip() == "from the host"
        guest.check_output("umount /mnt/extra")
        backend.detach_shared_folder(spec.name, share)
        assert guest.run(mount)[0] != 0  # the device is gone from the guest
    backend.poweroff(spec.name)


def test_a_guest_without_shared_memory_refuses_in_the_hypervisors_words(
    backend: Hypervisor, running_vm: RunningVM, tmp_path: Path
) -> None:
    _require_hotplug(backend)
    running_vm.guest().close()
    with pytest.raises(OperationFailed) as info:
        backend.attach_shared_folder(running_vm.name, SharedFolder("extra", tmp_path))
    assert "shared memory" in info.value.message, info.value.message
    assert info.value.fix
