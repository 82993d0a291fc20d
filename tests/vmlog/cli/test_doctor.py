"""``vml doctor``: the accelerator decision and every backend's state, in words and in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hypervisors.libvirt import accel


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmlog.cli.main", "doctor", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **env},
    )


@pytest.mark.vm  # the real daemon and a real guest test decide
def test_auto_accelerator_is_what_a_real_guest_test_says(vmlog_home: Path) -> None:
    proc = doctor("--json", VMLOG_ACCEL="auto")
    report = json.loads(proc.stdout)
    kvm = next(b for b in report["backends"] if b["backend"] == "kvm")
    assert kvm["available"], kvm
    assert report["best_backend"] == "kvm"
    assert proc.returncode == 0
    emulator = accel.find_emulator()
    # an independent, uncached run of the guest test decides what doctor should have said
    test = accel.check_kvm(emulator, use_cache=False) if Path("/dev/kvm").exists() and emulator else None
    expected = "kvm" if test is not None and test.works else "tcg"
    assert kvm["details"]["accelerator"] == expected
    if expected == "tcg" and Path("/dev/kvm").exists():
        assert any("KVM is present but not working" in w for w in kvm["warnings"])


@pytest.mark.vm  # the real daemon reports the accelerator
def test_forced_tcg_and_the_other_backends_name_their_fix(vmlog_home: Path) -> None:
    proc = doctor(VMLOG_ACCEL="tcg")
    assert proc.returncode == 0
    assert "accelerator: tcg" in proc.stdout
    for backend in ("virtualbox", "vmware"):
        line = next(line for line in proc.stdout.splitlines() if line.strip().split()[1:2] == [backend])
        if line.strip().startswith("--"):
            assert "fix:" in proc.stdout
    assert "project store consistent" in proc.stdout
