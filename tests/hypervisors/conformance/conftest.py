"""The ``backend`` fixture of the conformance suite: one entry per backend, the same tests for all.

A backend joins the suite by adding a factory to ``BACKEND_FACTORIES`` (a real connection, or one
wired to a simulator). Every VM a test creates goes through ``vm_factory``, whose finalizer deletes
it even when the test fails, so no domain leaks.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hypervisors import qemu_img
from hypervisors.base import Hypervisor
from hypervisors.errors import HypervisorError
from hypervisors.spec import DiskSpec, NicSpec, VMSpec


def _kvm() -> Hypervisor:
    from hypervisors.libvirt import LibvirtHypervisor

    return LibvirtHypervisor()


BACKEND_FACTORIES: dict[str, Callable[[], Hypervisor]] = {"kvm": _kvm}


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
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


class VMFactory:
    """Makes uniquely named VMs booting the test appliance through a fresh qcow2 overlay."""

    def __init__(self, hv: Hypervisor, image: Path, workdir: Path) -> None:
        self.hv = hv
        self.image = image
        self.workdir = workdir
        self.created: list[str] = []

    def spec(self, **changes: object) -> VMSpec:
        name = f"vmltest-{secrets.token_hex(4)}"
        vmdir = self.workdir / name
        vmdir.mkdir()
        top = qemu_img.create_overlay(vmdir / "system-0.qcow2", self.image, "raw", cluster_size=65536)
        spec = VMSpec(
            name=name,
            cpus=1,
            memory_mib=256,
            disks=(DiskSpec(path=top, format="qcow2", label="system"),),
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


@pytest.fixture
def vm_factory(backend: Hypervisor, test_appliance_image: Path, tmp_path: Path) -> Iterator[VMFactory]:
    factory = VMFactory(backend, test_appliance_image, tmp_path)
    yield factory
    factory.cleanup()
