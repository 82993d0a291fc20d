"""Fixtures of the conformance suite: one entry per backend, the same tests for all.

A backend joins the suite by adding a factory to ``BACKEND_FACTORIES`` (a real connection, or one
wired to a simulator: see ``simulated_backends.py``). Every VM a test creates goes through a
:class:`VMFactory`, whose finalizer deletes it even when the test fails, so no VM leaks.

Booting under TCG costs seconds, so the tests that only need *a* running guest share one VM per
backend (``running_vm``): each use brings it back up if an earlier test stopped, suspended or
reverted it, so the tests stay independent of their order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import simulated_backends
from conformance_vms import SEED_META_DATA, SEED_USER_DATA, RunningVM, VMFactory, boot

from hypervisors.base import Hypervisor
from hypervisors.errors import HypervisorError
from hypervisors.spec import DiskSpec


def _kvm() -> Hypervisor:
    from hypervisors.libvirt import LibvirtHypervisor

    return LibvirtHypervisor()


BACKEND_FACTORIES: dict[str, Callable[[], Hypervisor]] = {"kvm": _kvm}
simulated_backends.register(BACKEND_FACTORIES)


@pytest.fixture(scope="module", params=sorted(BACKEND_FACTORIES))
def backend(request: pytest.FixtureRequest) -> Iterator[Hypervisor]:
    try:
        hv = BACKEND_FACTORIES[request.param]()
    except HypervisorError as exc:
        pytest.skip(f"backend {request.param} unavailable here: {exc}")
    probe = hv.probe()
    if not probe.available:
        hv.close()
        pytest.skip(f"backend {request.param} unavailable here: {probe.summary}")
    yield hv
    hv.close()


@pytest.fixture
def vm_factory(backend: Hypervisor, test_appliance_image: Path, tmp_path: Path) -> Iterator[VMFactory]:
    factory = VMFactory(backend, test_appliance_image, tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def running_vm(
    backend: Hypervisor, test_appliance_image: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningVM]:
    from vmlog.context.nocloud import build_nocloud_seed

    factory = VMFactory(backend, test_appliance_image, tmp_path_factory.mktemp(f"shared-{backend.name}"))
    try:
        spec = factory.spec()
        seed = build_nocloud_seed(Path(spec.serial_log).with_name("seed.iso"),  # type: ignore[arg-type]
                                  meta_data=SEED_META_DATA, user_data=SEED_USER_DATA)
        cdrom = DiskSpec(path=seed, format="raw", device="cdrom", readonly=True, label="seed")
        spec = factory.define(spec.replace(disks=(*spec.disks, cdrom)))
        boot(backend, spec).close()
        yield RunningVM(backend, spec)
    finally:
        factory.cleanup()
