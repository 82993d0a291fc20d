"""The KVM test guest: it reaches 64-bit mode under TCG, and a timeout bounds it."""

from __future__ import annotations

import pytest

from hypervisors.libvirt import accel

EMULATOR = accel.find_emulator()
needs_qemu = pytest.mark.skipif(EMULATOR is None, reason="qemu-system-x86_64 is not installed")


def test_firmware_layout() -> None:
    image = accel.firmware_image()
    assert len(image) == accel.FIRMWARE_SIZE
    assert image[0xFFF0] == 0xEA  # far jump at the reset vector


@needs_qemu
def test_test_guest_reaches_long_mode_under_tcg() -> None:
    result = accel.run_guest_test(EMULATOR, "tcg", timeout=60)
    assert result.works, result.reason


@needs_qemu
def test_test_guest_is_bounded_by_its_timeout() -> None:
    result = accel.run_guest_test(EMULATOR, "tcg", timeout=0.001)
    assert not result.works and "did not reach" in result.reason


def test_explicit_tcg_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assert accel.decide_local("tcg", EMULATOR).domain_type == "qemu"
    monkeypatch.setenv(accel.ACCEL_ENV, "TCG")
    assert accel.requested_accelerator(None) == "tcg"
    with pytest.raises(ValueError):
        accel.requested_accelerator("hvf")


@needs_qemu
def test_auto_falls_back_to_tcg_with_a_reason_when_kvm_fails() -> None:
    decision = accel.decide_local("auto", EMULATOR)
    kvm = accel.check_kvm(EMULATOR)
    assert decision.accelerator == ("kvm" if kvm.works else "tcg")
    if not kvm.works:
        assert decision.warning and "TCG" in decision.warning


def test_remote_decision_uses_libvirt_capabilities() -> None:
    assert accel.decide_remote("auto", True).accelerator == "kvm"
    assert accel.decide_remote("auto", False).accelerator == "tcg"
