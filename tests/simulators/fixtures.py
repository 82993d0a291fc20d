"""Pytest fixtures that put the simulators on PATH with their state in the test's temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.install import install
from simulators.qemu_vm import kill_all_under


@pytest.fixture
def simulated_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``VBoxManage`` and ``vmrun`` simulators first on PATH; returns the work directory."""
    work = tmp_path / "sim"
    bin_dir = install(work / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("VBOX_SIM_HOME", str(work / "vbox-home"))
    monkeypatch.setenv("VMRUN_SIM_HOME", str(work / "vmrun-home"))
    monkeypatch.delenv("VBOX_SIM_FAULT", raising=False)
    yield work
    kill_all_under(work.parent)  # VMs a failed test left running (machine folders live beside ``sim``)
