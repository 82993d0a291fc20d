"""The libvirt backend on libvirt's built-in test driver (``test:///default``): no daemon, no root, no QEMU.

Covers what differs from a QEMU connection: capabilities that follow the driver, no KVM test, the
undefine and power-button flags the driver lacks, the driver's state outliving one backend object,
``$VMLOG_LIBVIRT_URI``, and libvirt's errors reaching callers as vmlog's.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hypervisors import registry
from hypervisors.base import Capability, Hypervisor, VMState
from hypervisors.errors import HypervisorError, OperationFailed, Unsupported
from hypervisors.libvirt import LibvirtHypervisor, connection
from hypervisors.libvirt.lifecycle import Lifecycle
from hypervisors.spec import DiskSpec, SharedFolder, VMSpec

libvirt = pytest.importorskip("libvirt")
TEST_URI = "test:///default"


@pytest.fixture
def hv() -> Iterator[LibvirtHypervisor]:
    backend = LibvirtHypervisor(TEST_URI)
    yield backend
    backend.close()


@pytest.fixture
def spec(tmp_path: Path) -> Iterator[VMSpec]:
    vm = VMSpec(name=f"vmltest-td-{secrets.token_hex(4)}",
                disks=(DiskSpec(tmp_path / "system.qcow2", label="system"),), serial_log=tmp_path / "serial.log")
    yield vm
    with LibvirtHypervisor(TEST_URI) as cleanup:
        if cleanup.exists(vm.name):
            cleanup.delete(vm.name)


def test_the_test_driver_declares_only_what_it_does(hv: LibvirtHypervisor) -> None:
    assert not hv.runs_qemu
    assert hv.can(Capability.MEMORY_SAVE) and hv.can(Capability.OVERLAY_CHAIN)
    for qemu_only in (Capability.LIVE_SNAPSHOT, Capability.MEMORY_IMAGE, Capability.SHARED_FOLDER_HOTPLUG,
                      Capability.PORT_FORWARD):
        assert not hv.can(qemu_only)
    decision = hv.accelerator  # no KVM test guest is started for a driver that runs no QEMU
    assert (decision.accelerator, decision.domain_type) == ("none", "test")
    probe = hv.probe()
    assert probe.available, probe.summary
    assert probe.details["accelerator"] == "none"


def test_delete_works_although_the_driver_rejects_some_undefine_flags(hv: LibvirtHypervisor, spec: VMSpec) -> None:
    hv.define(spec)
    hv.start(spec.name)
    hv.suspend(spec.name)
    assert hv.state(spec.name) is VMState.SAVED
    hv.delete(spec.name)
    assert not hv.exists(spec.name)
    hv.define(spec)  # the managed save went with the VM
    assert hv.state(spec.name) is VMState.STOPPED
    hv.delete(spec.name)
    assert spec.name not in hv.list_vms()


class FlagPickyDomain:
    """A domain whose driver knows only some undefine flags, or has no ``undefineFlags`` at all."""

    def __init__(self, accepted: int | None, managed_save: bool) -> None:
        self.accepted = accepted
        self.managed_save = managed_save
        self.tried: list[int] = []
        self.undefined = False

    def _fail(self, code: int, text: str) -> None:
        error = libvirt.libvirtError(text)
        error.err = (code, 0, text, 0, None, None, None, 0, 0)
        raise error

    def undefineFlags(self, flags: int) -> None:  # noqa: N802 - libvirt's name
        self.tried.append(flags)
        if self.accepted is None:
            self._fail(connection.ERR_NO_SUPPORT, "this function is not supported by the connection driver")
        if flags & ~self.accepted:
            self._fail(connection.ERR_INVALID_ARG, f"unsupported flags ({flags & ~self.accepted:#x}) in function x")
        if flags & libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE:
            self.managed_save = False
        self.undefine()

    def undefine(self) -> None:
        if self.managed_save:
            self._fail(connection.ERR_OPERATION_INVALID, "Refusing to undefine while domain managed save image exists")
        self.undefined = True

    def hasManagedSaveImage(self, flags: int) -> int:  # noqa: N802
        return int(self.managed_save)

    def managedSaveRemove(self, flags: int) -> None:  # noqa: N802
        self.managed_save = False


@pytest.mark.parametrize("accepted", [libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE, 0, None])
def test_undefine_drops_the_flags_the_driver_lacks(hv: LibvirtHypervisor, accepted: int | None) -> None:
    dom = FlagPickyDomain(accepted, managed_save=True)
    Lifecycle._undefine(hv, dom, "picky")
    assert dom.undefined and not dom.managed_save
    assert dom.tried == sorted(dom.tried, reverse=True)  # from every flag down to fewer


def test_state_outlives_the_backend_object_that_defined_it(spec: VMSpec) -> None:
    with LibvirtHypervisor(TEST_URI) as first:
        first.define(spec)
        first.start(spec.name)
    with LibvirtHypervisor(TEST_URI) as second:
        assert second.state(spec.name) is VMState.RUNNING


def test_vmlog_libvirt_uri_points_the_backend_at_the_test_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(connection.URI_ENV, f"  {TEST_URI} ")
    assert connection.default_uri() == TEST_URI
    with registry.open_backend("kvm") as hv:
        assert isinstance(hv, LibvirtHypervisor) and hv.uri == TEST_URI
        assert hv.driver == "TEST" and not hv.remote
    assert registry.probe("kvm").available
    assert not connection.is_remote(TEST_URI) and not connection.is_local_system(TEST_URI)
    monkeypatch.setenv(connection.URI_ENV, "")
    assert connection.default_uri() in ("qemu:///system", "qemu:///session")


def test_hotplug_refused_by_capability_on_the_test_driver(hv: LibvirtHypervisor, spec: VMSpec,
                                                          tmp_path: Path) -> None:
    hv.define(spec)
    hv.start(spec.name)
    with pytest.raises(Unsupported, match="TEST driver"):
        hv.attach_shared_folder(spec.name, SharedFolder("extra", tmp_path))


class FailingDomain:
    """Every call fails as a broken connection would make it fail."""

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: object) -> None:
            raise libvirt.libvirtError(f"cannot recv data: {name} lost the connection")

        return fail


class OneDomainConnection:
    def __init__(self, real: Any) -> None:
        self.real = real

    def lookupByName(self, name: str) -> FailingDomain:  # noqa: N802
        return FailingDomain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_libvirt_error_reaches_the_caller_as_a_vmlog_error(hv: LibvirtHypervisor, tmp_path: Path) -> None:
    hv._conn = OneDomainConnection(hv._conn)
    calls = [lambda: hv.start("vm"), lambda: hv.delete("vm"), lambda: hv.disk_tops("vm"), lambda: hv.resume("vm"),
             lambda: hv.swap_disk("vm", "system", tmp_path / "top"), lambda: hv.suspend("vm")]
    for call in calls:
        with pytest.raises(HypervisorError) as info:
            call()
        assert not isinstance(info.value, libvirt.libvirtError)
        assert "lost the connection" in info.value.message
    with pytest.raises(OperationFailed, match="'vm'.*lost the connection"):
        hv.start("vm")
    hv._conn = hv._conn.real


def test_every_operation_maps_libvirt_errors() -> None:
    """A safety net on each public operation, whichever libvirt call inside it fails."""
    contract = {name for name, member in inspect.getmembers(Hypervisor, callable) if not name.startswith("_")}
    unwrapped = [
        name for name, member in inspect.getmembers(LibvirtHypervisor, inspect.isfunction)
        if name in contract and member.__module__.startswith("hypervisors.libvirt")
        and name not in ("probe", "close", "can", "require")  # probe never raises; close swallows
        and not getattr(member, "maps_libvirt_errors", False)
    ]
    assert unwrapped == []
