"""Mapping of libvirt's domain states (and their reasons) onto vmlog's :class:`VMState`.

The numbers are libvirt's stable ABI (``virDomainState``, ``virDomainPausedReason``), written out
here so the mapping can be read and tested without the libvirt module.
"""

from __future__ import annotations

from hypervisors.base import VMState

NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(8)

# Paused reasons during which libvirt is busy and the domain will leave the state by itself.
PAUSED_MIGRATION = 2
PAUSED_SAVE = 3
PAUSED_DUMP = 4
PAUSED_SHUTTING_DOWN = 8
PAUSED_SNAPSHOT = 9
PAUSED_CRASHED = 10
PAUSED_STARTING_UP = 11
_BUSY_PAUSE_REASONS = frozenset(
    {PAUSED_MIGRATION, PAUSED_SAVE, PAUSED_DUMP, PAUSED_SHUTTING_DOWN, PAUSED_SNAPSHOT, PAUSED_STARTING_UP}
)


def map_state(state: int, reason: int, has_managed_save: bool) -> VMState:
    """One libvirt state + reason (+ whether a managed save image exists) as a :class:`VMState`."""
    if state in (RUNNING, BLOCKED):
        return VMState.RUNNING
    if state == PAUSED:
        if reason == PAUSED_CRASHED:
            return VMState.CRASHED
        return VMState.TRANSITIONING if reason in _BUSY_PAUSE_REASONS else VMState.PAUSED
    if state == PMSUSPENDED:  # guest-initiated S3: memory still held by QEMU, like a pause
        return VMState.PAUSED
    if state == SHUTDOWN:
        return VMState.TRANSITIONING
    if state == SHUTOFF:
        return VMState.SAVED if has_managed_save else VMState.STOPPED
    if state == CRASHED:
        return VMState.CRASHED
    return VMState.UNKNOWN
