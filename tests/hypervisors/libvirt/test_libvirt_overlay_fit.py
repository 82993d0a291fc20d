"""A running disk is only moved onto an overlay of the file it runs on (else the guest would see another disk)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hypervisors.errors import InvalidState
from hypervisors.libvirt import LibvirtHypervisor
from hypervisors.libvirt.disks import backing_file
from hypervisors.spec import DiskSpec, VMSpec

libvirt = pytest.importorskip("libvirt")


def qcow2(path: Path, backing: str | None = None) -> Path:
    cmd = ["qemu-img", "create", "-q", "-f", "qcow2"]
    cmd += ["-b", backing, "-F", "qcow2", "-u", str(path), "1M"] if backing else [str(path), "1M"]
    subprocess.run(cmd, check=True, cwd=path.parent)
    return path


class Snapshots:
    """The test driver's domain, its disk-only snapshots recorded (the test driver has none)."""

    def __init__(self, real: Any, calls: list[str]) -> None:
        self.real, self.calls = real, calls

    def lookupByName(self, name: str) -> Any:  # noqa: N802
        domain = self.real.lookupByName(name)
        calls = self.calls

        class Recorded:
            def snapshotCreateXML(self, xml: str, flags: int) -> None:  # noqa: N802
                calls.append(xml)

            def __getattr__(self, attr: str) -> Any:
                return getattr(domain, attr)

        return Recorded()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[LibvirtHypervisor, VMSpec, list[str]]]:
    hv = LibvirtHypervisor("test:///default")
    disk = DiskSpec(qcow2(tmp_path / "a.qcow2"), label="system")
    vm = VMSpec(name=f"vmltest-fit-{secrets.token_hex(4)}", disks=(disk,))
    hv.define(vm)
    hv.start(vm.name)
    calls: list[str] = []
    hv._conn = Snapshots(hv._conn, calls)
    try:
        yield hv, vm, calls
    finally:
        hv._conn = hv._conn.real
        if hv.exists(vm.name):
            hv.delete(vm.name)
        hv.close()


def test_the_backing_file_is_read_from_the_header(tmp_path: Path) -> None:
    qcow2(tmp_path / "base.qcow2")
    assert backing_file(qcow2(tmp_path / "top.qcow2", "base.qcow2")) == tmp_path / "base.qcow2"
    assert backing_file(tmp_path / "base.qcow2") is None
    assert backing_file(tmp_path / "missing.qcow2") is None


def test_an_overlay_of_the_running_top_is_taken(running, tmp_path: Path) -> None:
    hv, vm, calls = running
    hv.swap_disks(vm.name, {"system": qcow2(tmp_path / "b.qcow2", "a.qcow2")})
    assert len(calls) == 1


def test_an_overlay_of_another_file_is_refused(running, tmp_path: Path) -> None:
    hv, vm, calls = running
    qcow2(tmp_path / "stale.qcow2")
    with pytest.raises(InvalidState, match="runs on .*a.qcow2, not on stale.qcow2") as refused:
        hv.swap_disks(vm.name, {"system": qcow2(tmp_path / "b.qcow2", "stale.qcow2")})
    assert calls == [] and "vml doctor --repair" in (refused.value.fix or "")
