"""Fixtures shared by the whole suite: an isolated vmlog home per test, offscreen Qt."""

from __future__ import annotations

import os
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
