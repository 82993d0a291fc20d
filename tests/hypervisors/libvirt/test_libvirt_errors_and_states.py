"""libvirt error codes and domain states map onto vmlog's errors and VMState."""

from __future__ import annotations

import pytest

from hypervisors.base import VMState
from hypervisors.errors import (
    BackendUnavailable,
    InvalidState,
    OperationFailed,
    OperationTimeout,
    Unsupported,
    VMNotFound,
)
from hypervisors.libvirt import connection, states

libvirt = pytest.importorskip("libvirt")


class FakeLibvirtError(Exception):
    """Carries an error code like ``libvirt.libvirtError`` does."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code

    def get_error_code(self) -> int:
        return self.code


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (libvirt.VIR_ERR_NO_DOMAIN, VMNotFound),
        (libvirt.VIR_ERR_OPERATION_INVALID, InvalidState),
        (libvirt.VIR_ERR_OPERATION_TIMEOUT, OperationTimeout),
        (libvirt.VIR_ERR_OPERATION_UNSUPPORTED, Unsupported),
        (libvirt.VIR_ERR_INTERNAL_ERROR, OperationFailed),
    ],
)
def test_error_codes(code: int, error: type) -> None:
    mapped = connection.map_error(FakeLibvirtError(code, "libvirt says no"), "start", "vm1")
    assert type(mapped) is error
    assert "libvirt says no" in mapped.message and "'vm1'" in mapped.message


def test_rejected_flags_are_told_apart_from_a_rejected_call() -> None:
    flags = "unsupported flags (0x14) in function testDomainUndefineFlags"
    assert connection.rejects_flags(FakeLibvirtError(libvirt.VIR_ERR_INVALID_ARG, flags))
    assert connection.rejects_flags(FakeLibvirtError(libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, "no such flag"))
    assert not connection.rejects_flags(FakeLibvirtError(libvirt.VIR_ERR_INVALID_ARG, "bad name"))
    assert not connection.rejects_flags(FakeLibvirtError(libvirt.VIR_ERR_NO_SUPPORT, "not supported"))
    assert connection.ERR_INVALID_ARG == libvirt.VIR_ERR_INVALID_ARG


def test_real_libvirt_error_for_a_missing_domain() -> None:
    lv = connection.import_libvirt()
    conn = connection.open_connection(lv, "test:///default")
    try:
        with pytest.raises(lv.libvirtError) as info:
            conn.lookupByName("vmltest-surely-missing")
        assert isinstance(connection.map_error(info.value, "find the VM", "x"), VMNotFound)
    finally:
        conn.close()


def test_unreachable_daemon_says_how_to_start_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lv = connection.import_libvirt()
    with pytest.raises(BackendUnavailable) as info:
        connection.open_connection(lv, f"qemu:///system?socket={tmp_path}/nothing.sock")
    assert "libvirtd" in (info.value.fix or "")


def test_every_libvirt_state_maps() -> None:
    lv = libvirt
    assert states.map_state(lv.VIR_DOMAIN_RUNNING, 1, False) is VMState.RUNNING
    assert states.map_state(lv.VIR_DOMAIN_BLOCKED, 0, False) is VMState.RUNNING
    assert states.map_state(lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PAUSED_USER, False) is VMState.PAUSED
    assert states.map_state(lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PAUSED_SAVE, False) is VMState.TRANSITIONING
    assert states.map_state(lv.VIR_DOMAIN_PAUSED, lv.VIR_DOMAIN_PAUSED_CRASHED, False) is VMState.CRASHED
    assert states.map_state(lv.VIR_DOMAIN_SHUTDOWN, 0, False) is VMState.TRANSITIONING
    assert states.map_state(lv.VIR_DOMAIN_SHUTOFF, 0, False) is VMState.STOPPED
    assert states.map_state(lv.VIR_DOMAIN_SHUTOFF, lv.VIR_DOMAIN_SHUTOFF_SAVED, True) is VMState.SAVED
    assert states.map_state(lv.VIR_DOMAIN_CRASHED, 0, False) is VMState.CRASHED
    assert states.map_state(lv.VIR_DOMAIN_PMSUSPENDED, 0, False) is VMState.PAUSED
    assert states.map_state(lv.VIR_DOMAIN_NOSTATE, 0, False) is VMState.UNKNOWN
    assert states.PAUSED_SAVE == lv.VIR_DOMAIN_PAUSED_SAVE
    assert states.PAUSED_STARTING_UP == lv.VIR_DOMAIN_PAUSED_STARTING_UP
