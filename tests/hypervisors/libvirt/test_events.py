"""libvirt lifecycle events reach a ``watch_states`` subscriber, mapped onto VMState, until it unsubscribes."""

from __future__ import annotations

import queue
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.base import Capability, VMState
from hypervisors.errors import HypervisorError, Unsupported
from hypervisors.libvirt import events, states
from hypervisors.spec import DiskSpec, VMSpec

libvirt = pytest.importorskip("libvirt")
DEADLINE = 120.0  # seconds a test waits for an event before it fails (TCG on a busy host)


@pytest.mark.parametrize(
    ("event", "detail", "expected"),
    [
        (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED, VMState.RUNNING),
        (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_RESTORED, VMState.RUNNING),
        (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_RESUMED_UNPAUSED, VMState.RUNNING),
        (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_IOERROR, VMState.PAUSED),
        (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED, VMState.TRANSITIONING),
        (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED, VMState.STOPPED),
        (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, VMState.STOPPED),
        (libvirt.VIR_DOMAIN_EVENT_UNDEFINED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED, VMState.STOPPED),
        (libvirt.VIR_DOMAIN_EVENT_SHUTDOWN, libvirt.VIR_DOMAIN_EVENT_SHUTDOWN_GUEST, VMState.TRANSITIONING),
        (libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED, libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED_MEMORY, VMState.PAUSED),
        (libvirt.VIR_DOMAIN_EVENT_CRASHED, libvirt.VIR_DOMAIN_EVENT_CRASHED_PANICKED, VMState.CRASHED),
    ],
)
def test_event_maps_through_the_state_mapping(event: int, detail: int, expected: VMState) -> None:
    mapped = events.event_state(event, detail)
    assert mapped is not None
    assert states.map_state(*mapped, False) is expected


def test_the_event_numbers_are_libvirts() -> None:
    assert events.EVENT_ID_LIFECYCLE == libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE
    assert events.EVENT_CRASHED == libvirt.VIR_DOMAIN_EVENT_CRASHED
    assert events.STOPPED_SAVED == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED
    assert events.event_state(libvirt.VIR_DOMAIN_EVENT_DEFINED, 0) is None  # the domain is asked instead


@pytest.fixture
def hv() -> Iterator:
    from hypervisors.libvirt import LibvirtHypervisor

    try:
        backend = LibvirtHypervisor()
    except HypervisorError as exc:
        pytest.skip(f"libvirt unavailable here: {exc}")
    yield backend
    backend.close()


class Recorder:
    """Collects (name, state) of one VM from the libvirt event thread."""

    def __init__(self, vm: str) -> None:
        self.vm = vm
        self.seen: queue.Queue[VMState] = queue.Queue()
        self.all: list[tuple[str, VMState]] = []

    def __call__(self, name: str, state: VMState) -> None:
        self.all.append((name, state))
        if name == self.vm:
            self.seen.put(state)

    def wait_for(self, wanted: VMState) -> list[VMState]:
        """States seen up to and including ``wanted`` (fails after DEADLINE without it)."""
        got: list[VMState] = []
        while True:
            try:
                state = self.seen.get(timeout=DEADLINE)
            except queue.Empty:
                pytest.fail(f"no {wanted.value} event for {self.vm} within {DEADLINE:g} s (saw {got})")
            got.append(state)
            if state is wanted:
                return got

    def mine(self) -> list[tuple[str, VMState]]:
        return [entry for entry in list(self.all) if entry[0] == self.vm]


@pytest.fixture
def tiny_vm(hv, test_appliance_image: Path, tmp_path: Path) -> Iterator[str]:
    name = f"vmltest-ev-{secrets.token_hex(4)}"
    top = qemu_img.create_overlay(tmp_path / "system.qcow2", test_appliance_image, "raw", cluster_size=65536)
    spec = VMSpec(
        name=name, cpus=1, memory_mib=128, disks=(DiskSpec(path=top, format="qcow2", label="system"),),
        serial_log=tmp_path / "serial.log",
    )
    hv.define(spec)
    yield name
    try:
        if hv.exists(name):
            hv.delete(name)
    except HypervisorError:
        pass


@pytest.fixture
def test_driver() -> Iterator:
    """The backend on libvirt's test driver: events without a daemon or a guest."""
    from hypervisors.libvirt import LibvirtHypervisor

    backend = LibvirtHypervisor("test:///default")
    yield backend
    backend.close()


def test_libvirt_declares_state_events(test_driver) -> None:
    assert test_driver.can(Capability.STATE_EVENTS)


def test_events_arrive_from_the_test_driver(test_driver, tmp_path: Path) -> None:
    name = f"vmltest-ev-{secrets.token_hex(4)}"
    spec = VMSpec(name=name, disks=(DiskSpec(path=tmp_path / "system.qcow2", format="qcow2", label="system"),))
    recorder = Recorder(name)
    unsubscribe = test_driver.watch_states(recorder)
    try:
        test_driver.define(spec)
        test_driver.start(name)
        recorder.wait_for(VMState.RUNNING)
        test_driver.suspend(name)
        assert recorder.wait_for(VMState.SAVED)[-1] is VMState.SAVED  # a managed save, not a plain stop
        test_driver.delete(name)
    finally:
        unsubscribe()
        if test_driver.exists(name):
            test_driver.delete(name)


@pytest.mark.vm
def test_start_and_poweroff_arrive_as_events_until_unsubscribed(hv, tiny_vm: str) -> None:
    first, second = Recorder(tiny_vm), Recorder(tiny_vm)
    unsubscribe = hv.watch_states(first)
    keep = hv.watch_states(second)
    try:
        hv.start(tiny_vm)
        first.wait_for(VMState.RUNNING)
        hv.poweroff(tiny_vm)
        first.wait_for(VMState.STOPPED)
        assert hv.state(tiny_vm) is VMState.STOPPED
        second.wait_for(VMState.STOPPED)

        unsubscribe()
        unsubscribe()  # idempotent
        before = first.mine()
        hv.start(tiny_vm)
        second.wait_for(VMState.RUNNING)
        hv.poweroff(tiny_vm)
        second.wait_for(VMState.STOPPED)  # the other subscriber saw the whole second round ...
        assert first.mine() == before  # ... the one that left saw none of it
    finally:
        keep()
        unsubscribe()


def test_the_contract_default_is_unsupported(test_driver) -> None:
    from hypervisors.base import Hypervisor

    with pytest.raises(Unsupported) as info:
        Hypervisor.watch_states(test_driver, lambda _name, _state: None)
    assert info.value.fix
