"""Readiness through a guest agent: agent answers and cloud-init finished; a timeout says what was seen."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hypervisors.errors import OperationTimeout, Unsupported
from hypervisors.guest import ExecResult, GuestAgent
from vmlog.context import readiness
from vmlog.context.guest import CLOUD_INIT_DONE, agent_kind_of_boot, guest_agent_kind
from vmlog.context.readiness import GuestNotReady, GuestReadyCheck, wait_until


class BootingGuest(GuestAgent):
    """Silent for ``silent`` pings, then cloud-init finishes after ``booting`` more checks."""

    kind = "fake-ga"

    def __init__(self, silent: int, booting: int) -> None:
        self.silent, self.booting = silent, booting
        self.commands: list[str] = []

    def ping(self, timeout: float = 5.0) -> None:
        if self.silent > 0:
            self.silent -= 1
            raise OperationTimeout("QEMU guest agent is not connected")

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        self.commands.append(argv[-1])
        self.booting -= 1
        return ExecResult(0 if self.booting < 0 else 1)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "SLICE", 0.01)


def test_ready_once_the_agent_answers_and_cloud_init_finished() -> None:
    guest = BootingGuest(silent=2, booting=2)
    check = GuestReadyCheck(guest)
    wait_until(check, timeout=5, what="the guest agent and cloud-init", alive=lambda: None, cancel=None, fix="f")
    assert guest.commands == [CLOUD_INIT_DONE] * 3 and check.seen == "ready"


def test_a_timeout_says_how_far_the_guest_got() -> None:
    check = GuestReadyCheck(BootingGuest(silent=0, booting=10**6))
    with pytest.raises(GuestNotReady, match="last seen: the guest agent answers; cloud-init has not finished"):
        wait_until(check, timeout=0.05, what="the guest agent and cloud-init", alive=lambda: None, cancel=None,
                   fix="f")  # fmt: skip
    silent = GuestReadyCheck(BootingGuest(silent=10**6, booting=0))
    with pytest.raises(GuestNotReady, match="no answer from the guest agent .QEMU guest agent is not connected"):
        wait_until(silent, timeout=0.05, what="the guest agent", alive=lambda: None, cancel=None, fix="f")


def test_agent_kinds_from_catalog_and_setup_records() -> None:
    assert agent_kind_of_boot({"agent": "vmlog"}) == "vmlog"
    assert agent_kind_of_boot({"agent": "qemu-ga"}) == agent_kind_of_boot({"agent": "standard"}) == "standard"
    assert agent_kind_of_boot({}) is None
    assert guest_agent_kind({"agent": True}) == "vmlog"  # setup.json written before there were two kinds
    assert guest_agent_kind({"agent": False, "guest_agent": "standard"}) == "standard"
    assert guest_agent_kind({"agent": False}) is None


class LoginlessAgent(GuestAgent):
    """Answers pings but runs no guest commands (Guest Additions or VMware Tools without a guest login)."""

    kind = "guest-additions"

    def ping(self, timeout: float = 5.0) -> None:
        return None

    def exec(self, argv: Sequence[str], *, timeout: float = 60.0, stdin: bytes | None = None) -> ExecResult:
        raise Unsupported("no guest user to run programs as", fix="set VMLOG_GUEST_USER and VMLOG_GUEST_PASSWORD")


def test_an_agent_without_a_guest_login_is_ready_when_it_answers_or_by_the_fallback() -> None:
    check = GuestReadyCheck(LoginlessAgent())
    assert check() and "cloud-init not checked" in check.seen
    banners = iter([False, True])
    with_ssh = GuestReadyCheck(LoginlessAgent(), fallback=lambda: next(banners))
    assert not with_ssh() and "cloud-init cannot be asked" in with_ssh.seen
    assert with_ssh() and with_ssh.seen == "ready"
