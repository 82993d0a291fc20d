"""`vml doctor` names the slow case of a host without udev: /dev/kvm root:root 0600 makes libvirt re-probe QEMU."""

from __future__ import annotations

import grp
import os
from pathlib import Path

import pytest

from hypervisors.libvirt.accel import system_daemon_device_problem


@pytest.fixture
def device(tmp_path: Path) -> Path:
    """A stand-in with the modes a real /dev/kvm has (a regular file: only its owner, group and mode matter)."""
    path = tmp_path / "kvm"
    path.write_bytes(b"")
    return path


def test_root_root_0600_is_named_with_the_fix(device: Path) -> None:
    os.chown(device, 0, 0)
    device.chmod(0o600)
    problem = system_daemon_device_problem(device)
    assert problem is not None
    assert "root:root 0600" in problem and "re-probes QEMU" in problem
    assert f"chgrp kvm {device} && chmod 0660 {device}" in problem


def test_the_mode_udev_gives_is_fine(device: Path) -> None:
    try:
        kvm = grp.getgrnam("kvm").gr_gid
    except KeyError:
        pytest.skip("no kvm group on this host")
    os.chown(device, 0, kvm)
    device.chmod(0o660)
    assert system_daemon_device_problem(device) is None


def test_no_device_no_warning(tmp_path: Path) -> None:
    assert system_daemon_device_problem(tmp_path / "absent") is None
