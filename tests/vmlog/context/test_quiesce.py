"""Quiesced live saves: freeze around the snapshot, always thaw, say crash-consistent without an agent."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hypervisors.base import Capability
from hypervisors.errors import OperationFailed, OperationTimeout, Unsupported
from hypervisors.guest import ExecResult, GuestAgent
from vmlog.context import quiesce
from vmlog.context.quiesce import quiesced, sync_guest_clock


class FakeAgent(GuestAgent):
    kind = "fake-ga"

    def __init__(self, *, answers: bool = True, thaw_failures: int = 0) -> None:
        self.answers = answers
        self.thaw_failures = thaw_failures
        self.log: list[str] = []

    def ping(self, timeout: float = 5.0) -> None:
        if not self.answers:
            raise OperationTimeout("QEMU guest agent is not connected")

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        return ExecResult(0)

    def fsfreeze(self) -> int:
        self.ping()
        self.log.append("freeze")
        return 2

    def fsthaw(self) -> int:
        self.log.append("thaw")
        if self.thaw_failures:
            self.thaw_failures -= 1
            raise OperationTimeout("agent busy")
        return 2

    def set_time(self, epoch_ns: int | None = None) -> None:
        self.ping()
        self.log.append("set-time")


class FakeBackend:
    name = "fake"

    def __init__(self, agent: FakeAgent | None) -> None:
        self.agent = agent

    def can(self, capability: Capability) -> bool:
        return capability == Capability.GUEST_AGENT and self.agent is not None

    def guest_agent(self, vm_name: str) -> GuestAgent:
        assert self.agent is not None
        return self.agent


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quiesce, "THAW_PAUSE", 0)


def test_freeze_around_the_snapshot() -> None:
    agent = FakeAgent()
    with quiesced(FakeBackend(agent), "vm") as result:  # type: ignore[arg-type]
        agent.log.append("snapshot")
    assert agent.log == ["freeze", "snapshot", "thaw"]
    assert result.quiesced and result.frozen == result.thawed == 2
    assert result.describe() == "quiesced (2 filesystem(s) frozen by fake-ga)"
    assert result.to_dict()["consistency"] == "quiesced"


def test_thawed_even_when_the_snapshot_fails() -> None:
    agent = FakeAgent()
    with pytest.raises(RuntimeError, match="snapshot failed"):
        with quiesced(FakeBackend(agent), "vm"):  # type: ignore[arg-type]
            raise RuntimeError("snapshot failed")
    assert agent.log == ["freeze", "thaw"]


def test_a_thaw_is_retried_and_a_lasting_failure_is_reported() -> None:
    agent = FakeAgent(thaw_failures=2)
    with quiesced(FakeBackend(agent), "vm") as result:  # type: ignore[arg-type]
        pass
    assert agent.log == ["freeze", "thaw", "thaw", "thaw"] and result.thaw_error is None
    stuck = FakeAgent(thaw_failures=99)
    with pytest.raises(OperationFailed, match="may still be frozen") as failure:
        with quiesced(FakeBackend(stuck), "vm"):  # type: ignore[arg-type]
            pass
    assert "virsh" not in (failure.value.fix or "") and "fsfreeze -u" in (failure.value.fix or "")
    assert stuck.log.count("thaw") == quiesce.THAW_ATTEMPTS


def test_the_thaw_fix_names_virsh_only_for_libvirt() -> None:
    libvirt = FakeBackend(None)
    libvirt.name = "kvm"
    assert "`virsh domfsthaw vm`" in quiesce.thaw_fix(libvirt, "vm")  # type: ignore[arg-type]
    assert "virsh" not in quiesce.thaw_fix(FakeBackend(None), "vm")  # type: ignore[arg-type]


@pytest.mark.parametrize("agent", [None, FakeAgent(answers=False)], ids=["no channel", "agent silent"])
def test_without_an_agent_the_save_is_crash_consistent(agent: FakeAgent | None) -> None:
    with quiesced(FakeBackend(agent), "vm") as result:  # type: ignore[arg-type]
        pass
    assert not result.quiesced and result.consistency == "crash-consistent"
    assert result.describe().startswith("crash-consistent only (no guest agent froze the filesystems")
    if agent is not None:
        assert "thaw" not in agent.log


def test_serial_agent_cannot_freeze(tmp_path) -> None:
    with quiesced(FakeBackend(None), "vm", kind="vmlog", channel_socket=tmp_path / "none.sock") as result:  # type: ignore[arg-type]
        pass
    assert not result.quiesced and "cannot freeze" in result.reason


def test_clock_set_after_resume() -> None:
    agent = FakeAgent()
    assert sync_guest_clock(FakeBackend(agent), "vm") is None  # type: ignore[arg-type]
    assert agent.log == ["set-time"]
    assert "not set" in (sync_guest_clock(FakeBackend(FakeAgent(answers=False)), "vm") or "")  # type: ignore[arg-type]


class SelfSyncingAgent(FakeAgent):
    """Like Guest Additions and VMware Tools: the guest's own service sets the clock after a resume."""

    def set_time(self, epoch_ns: int | None = None) -> None:
        raise Unsupported("the guest's tools set the guest clock themselves after a resume")


class ClocklessAgent(GuestAgent):
    """An agent with the contract's default ``set_time``: it cannot set the clock."""

    def ping(self, timeout: float = 5.0) -> None:
        return None

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        return ExecResult(0)


def test_an_agent_that_sets_the_clock_itself_is_not_reported() -> None:
    assert sync_guest_clock(FakeBackend(SelfSyncingAgent()), "vm") is None  # type: ignore[arg-type]
    problem = sync_guest_clock(FakeBackend(ClocklessAgent()), "vm")  # type: ignore[arg-type]
    assert problem is not None and "cannot set the guest clock" in problem
