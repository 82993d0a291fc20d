"""The guest channel of every backend that declares ``Capability.GUEST_AGENT``, on one running guest per backend.

The simulators' Guest Additions and VMware Tools run guest commands for real (tests/simulators/sim_guest.py),
so these tests are fast: one blank VM with the agent installed and one without, booted once per backend.
libvirt's qemu-ga needs a real guest with qemu-ga, the Debian appliance: its VM test runs the same checks
(``guest_checks``); here libvirt's test driver shows only what it has, the freeze and thaw calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import guest_checks
import pytest
import simulated_backends
from conformance_vms import VMFactory

from hypervisors.base import Capability, Hypervisor
from hypervisors.guest import GuestAgent

# The standard agents that can freeze the guest's filesystems (qemu-ga); Guest Additions and VMware Tools cannot.
FREEZING_AGENTS = {"qemu-ga"}


@dataclass
class GuestVMs:
    backend: Hypervisor
    with_agent: str
    without_agent: str

    def agent(self) -> GuestAgent:
        return self.backend.guest_agent(self.with_agent)


@pytest.fixture(scope="module")
def guest_vms(backend: Hypervisor, blank_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestVMs]:
    if not backend.can(Capability.GUEST_AGENT):
        pytest.skip(f"{backend.name} declares no guest agent")
    if not simulated_backends.is_simulated(backend):
        pytest.skip(f"{backend.name}'s agent needs a real guest running it: the Debian appliance's VM test runs"
                    " these checks on qemu-ga")
    factory = VMFactory(backend, blank_image, tmp_path_factory.mktemp(f"guest-{backend.name}"))
    try:
        names = []
        for _ in range(2):
            spec = factory.define(factory.spec(memory_mib=64, nics=(), channel_socket=None))
            backend.start(spec.name)
            names.append(spec.name)
        simulated_backends.install_guest_agent(backend, names[0])
        yield GuestVMs(backend, names[0], names[1])
    finally:
        for name in factory.created:
            try:
                backend.poweroff(name)
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        factory.cleanup()


def test_the_agent_answers_and_says_what_it_is(guest_vms: GuestVMs) -> None:
    with guest_vms.agent() as agent:
        guest_checks.check_ping_and_info(agent)


def test_exec_returns_exit_code_stdout_and_stderr(guest_vms: GuestVMs) -> None:
    with guest_vms.agent() as agent:
        guest_checks.check_exec(agent)


def test_files_round_trip(guest_vms: GuestVMs) -> None:
    with guest_vms.agent() as agent:
        guest_checks.check_file_round_trip(agent)


def test_operating_system_and_network(guest_vms: GuestVMs) -> None:
    with guest_vms.agent() as agent:
        guest_checks.check_os_and_network(agent)


def test_fsfreeze_is_offered_or_unsupported(guest_vms: GuestVMs) -> None:
    with guest_vms.agent() as agent:
        guest_checks.check_fsfreeze(agent, offered=agent.kind in FREEZING_AGENTS)


def test_a_guest_without_the_agent_says_so(guest_vms: GuestVMs) -> None:
    with guest_vms.backend.guest_agent(guest_vms.without_agent) as agent:
        error = guest_checks.check_no_agent(agent)
    assert "not" in error.message  # "not running", "not ready": the tool's own words


def test_the_libvirt_test_driver_freezes_and_thaws(backend: Hypervisor, blank_vms: VMFactory,
                                                   boots_guests: bool) -> None:
    """Without a guest, libvirt's test driver still answers the freeze calls qemu-ga's channel goes through."""
    if boots_guests or backend.name != "kvm":
        pytest.skip("only libvirt's test driver answers agent calls without a guest")
    spec = blank_vms.define(blank_vms.spec())
    backend.start(spec.name)
    try:
        with backend.guest_agent(spec.name) as agent:
            guest_checks.check_fsfreeze(agent, offered=True)
    finally:
        backend.poweroff(spec.name)
