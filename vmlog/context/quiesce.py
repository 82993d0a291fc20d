"""Quiesced live saves: freeze the guest's filesystems around a live snapshot, and set its clock after a resume.

A disk layer frozen while the guest runs holds only what the guest had written to the disk; data
still in its page cache is lost, and ext4 replays its journal on restore. With a guest agent the
filesystems are flushed and frozen (``guest-fsfreeze-freeze``) for the instant of the snapshot and
thawed right after, whatever happened in between; without one the save is only crash-consistent,
and :class:`QuiesceResult` says so for the logbook.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypervisors.base import Hypervisor
from hypervisors.errors import OperationFailed, ReportableError, Unsupported
from hypervisors.guest import GuestAgent
from vmlog.context.guest import STANDARD_AGENT, open_guest

THAW_ATTEMPTS = 5
THAW_PAUSE = 1.0
QUIESCED = "quiesced"
CRASH_CONSISTENT = "crash-consistent"


@dataclass
class QuiesceResult:
    """What the freeze around one snapshot did: filled in on entry, completed on exit (the thaw)."""

    quiesced: bool = False
    frozen: int = 0  # filesystems the agent froze
    thawed: int = 0
    agent: str | None = None
    reason: str = ""  # why the save is only crash-consistent
    thaw_error: str | None = None

    @property
    def consistency(self) -> str:
        return QUIESCED if self.quiesced else CRASH_CONSISTENT

    def describe(self) -> str:
        """One phrase for the logbook row and the command's output."""
        if self.quiesced:
            return f"quiesced ({self.frozen} filesystem(s) frozen by {self.agent})"
        return f"crash-consistent only ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return {
            "consistency": self.consistency,
            "frozen": self.frozen,
            "thawed": self.thawed,
            "agent": self.agent,
            "reason": self.reason or None,
            "thaw_error": self.thaw_error,
        }


def _thaw(agent: GuestAgent, result: QuiesceResult) -> None:
    """Thaw, retrying: a guest left frozen hangs every write in it, so giving up early is not an option."""
    for attempt in range(THAW_ATTEMPTS):
        try:
            result.thawed = agent.fsthaw()
            result.thaw_error = None
            return
        except ReportableError as exc:
            result.thaw_error = exc.message
            if attempt + 1 < THAW_ATTEMPTS:
                time.sleep(THAW_PAUSE)


@contextmanager
def quiesced(
    backend: Hypervisor,
    vm_name: str,
    *,
    kind: str | None = STANDARD_AGENT,
    channel_socket: Path | None = None,
) -> Iterator[QuiesceResult]:
    """Freeze the running guest's filesystems for the body of the ``with`` (a live snapshot), then thaw.

    Never fails because the guest has no agent: the result then says the save is crash-consistent.
    The thaw runs even when the body raises; a thaw that keeps failing raises ``OperationFailed``
    after the body (unless the body's own error is on its way), with the command that thaws by hand.
    """
    result = QuiesceResult()
    agent: GuestAgent | None = None
    try:
        agent = open_guest(backend, vm_name, kind, channel_socket)
        result.agent = agent.kind
        result.frozen = agent.fsfreeze()
        result.quiesced = True
    except ReportableError as exc:
        result.quiesced = False
        result.reason = f"no guest agent froze the filesystems: {exc.message}"
    body_failed = True
    try:
        yield result
        body_failed = False
    finally:
        if agent is not None:
            if result.quiesced:
                _thaw(agent, result)
            agent.close()
    if result.thaw_error is not None and not body_failed:
        raise OperationFailed(
            f"the guest's filesystems may still be frozen: {result.thaw_error}",
            fix=thaw_fix(backend, vm_name),
        )


def thaw_fix(backend: Hypervisor, vm_name: str) -> str:
    """How to thaw a guest by hand: libvirt's own command, else ``fsfreeze -u`` from the guest's console."""
    by_hand = "or run `fsfreeze -u` on each frozen mount point as root from the guest's console (`vml console`)"
    if backend.name == "kvm":
        return f"thaw them by hand: `virsh domfsthaw {vm_name}`, {by_hand}"
    return f"restart the guest's {backend.name} agent, {by_hand}"


def _keeps_its_own_clock(agent: GuestAgent) -> bool:
    """True for an agent whose own ``set_time`` refuses because the guest's services set the clock.

    The contract's default ``set_time`` means "cannot"; VirtualBox Guest Additions and VMware Tools
    override it to say their services resynchronise the clock after a resume.
    """
    return type(agent).set_time is not GuestAgent.set_time


def sync_guest_clock(
    backend: Hypervisor, vm_name: str, *, kind: str | None = STANDARD_AGENT, channel_socket: Path | None = None
) -> str | None:
    """Set the guest clock to the host's after a resume (it stood still while saved); None, or why not.

    None too where the agent's guest sets its clock itself (Guest Additions, VMware Tools).
    """
    try:
        with open_guest(backend, vm_name, kind, channel_socket) as agent:
            try:
                agent.set_time()
            except Unsupported:
                if _keeps_its_own_clock(agent):
                    return None
                raise
    except ReportableError as exc:
        return f"the guest clock was not set: {exc.message}"
    return None
