"""Fixtures of the conformance suite: one entry per backend, the same tests for all.

A backend joins the suite by adding a factory to ``BACKEND_FACTORIES`` (a real connection, or one
wired to a simulator: see ``simulated_backends.py``). Every VM a test creates goes through a
:class:`VMFactory`, whose finalizer deletes it even when the test fails, so no VM leaks.

``kvm-test`` is the libvirt backend on libvirt's built-in test driver (``test:///default``): no
daemon, no root, no QEMU. It runs every test not marked ``vm``; the ``vm`` tests boot guests, which
that driver cannot, so they skip there.

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

TEST_DRIVER_URI = "test:///default"


def _kvm() -> Hypervisor:
    from hypervisors.libvirt import LibvirtHypervisor

    return LibvirtHypervisor()


def _kvm_test_driver() -> Hypervisor:
    from hypervisors.libvirt import LibvirtHypervisor

    return LibvirtHypervisor(TEST_DRIVER_URI)


BACKEND_FACTORIES: dict[str, Callable[[], Hypervisor]] = {"kvm": _kvm, "kvm-test": _kvm_test_driver}
GUESTLESS_BACKENDS = frozenset({"kvm-test"})  # define and change state, but boot no guest
simulated_backends.register(BACKEND_FACTORIES)


_GUESTLESS_INSTANCES: set[int] = set()  # id() of the open backends whose factory is in GUESTLESS_BACKENDS


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
    if request.param in GUESTLESS_BACKENDS:
        _GUESTLESS_INSTANCES.add(id(hv))
    yield hv
    _GUESTLESS_INSTANCES.discard(id(hv))
    hv.close()


def _backend_param(request: pytest.FixtureRequest) -> str | None:
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("backend") if callspec is not None else None


@pytest.fixture(autouse=True)
def _guests_only_where_they_boot(request: pytest.FixtureRequest) -> None:
    """A test that boots a guest (marked ``vm``) skips on a backend that runs none."""
    param = _backend_param(request)
    if param in GUESTLESS_BACKENDS and request.node.get_closest_marker("vm") is not None:
        pytest.skip(f"backend {param} boots no guests")


@pytest.fixture
def boots_guests(request: pytest.FixtureRequest) -> bool:
    """Whether starting a VM of this backend boots a real guest (QEMU), or only changes its recorded state."""
    return _backend_param(request) not in GUESTLESS_BACKENDS


@pytest.fixture(scope="session")
def blank_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small raw disk with a known pattern, for tests that define VMs but boot none."""
    path = tmp_path_factory.mktemp("blank") / "blank.raw"
    with path.open("wb") as f:
        f.truncate(16 << 20)
        f.seek(1 << 20)
        f.write(b"vmlog conformance base " * 512)
    return path


@pytest.fixture
def blank_vms(backend: Hypervisor, blank_image: Path, tmp_path: Path) -> Iterator[VMFactory]:
    """Like ``vm_factory``, on ``blank_image`` instead of the test appliance (nothing to build)."""
    factory = VMFactory(backend, blank_image, tmp_path)
    yield factory
    factory.cleanup()


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

    # module-scoped, so set up before the function-scoped skip of guestless backends: skip here too
    if id(backend) in _GUESTLESS_INSTANCES:
        pytest.skip(f"backend {backend.name} on {getattr(backend, 'uri', '?')} boots no guests")
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
