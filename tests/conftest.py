"""Fixtures shared by the whole suite: a vmlog home per test, libvirt's test driver for fast tests, offscreen Qt."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hypervisors import registry

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_NO_GLIB", "1")  # as ui/__init__.py: pytest-qt makes the QApplication before ui is imported


@pytest.fixture
def vmlog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``VMLOG_HOME`` for one test (one variable moves everything)."""
    root = tmp_path / "vmlog-home"
    root.mkdir()
    monkeypatch.setenv("VMLOG_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def test_appliance_image() -> Path:
    """The vmlog test appliance's raw disk image, built once and cached in ``$VMLOG_TEST_CACHE``."""
    from vmlog.testappliance.build import build_test_appliance

    cache = Path(os.environ.get("VMLOG_TEST_CACHE", "~/.cache/vmlog-tests")).expanduser()
    return build_test_appliance(cache)


@pytest.fixture
def kvm_available() -> None:
    """Skip the test where the kvm backend (libvirt + QEMU) does not work on this machine."""
    probe = registry.probe("kvm")
    if not probe.available:
        pytest.skip(f"the kvm backend does not work here: {probe.summary}")


TEST_DRIVER_URI = "test:///default"


@pytest.fixture(autouse=True)
def libvirt_test_driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests not marked ``vm`` talk to libvirt's in-process test driver: no daemon, no root (virt-manager's way).

    The test driver keeps its domains only while a connection to it is open, so one is held for the
    test: every connection the backend opens meanwhile sees the same domains, and the next test starts
    from the driver's pristine default again.
    """
    if request.node.get_closest_marker("vm") is not None:
        yield
        return
    monkeypatch.setenv("VMLOG_LIBVIRT_URI", TEST_DRIVER_URI)
    try:
        import libvirt
    except ImportError:  # without libvirt-python the kvm backend reports itself unavailable anyway
        yield
        return
    holder = libvirt.open(TEST_DRIVER_URI)
    try:
        yield
    finally:
        holder.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``mount(name, size)``: a tmpfs of ``size`` at ``tmp_path/name`` (a full disk for the tests), unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)

