"""The ``checks.json`` member of a bundle: written from a project, merged into another without clobbering."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmlog.checks.model import NUMBER, TEXT, Check, Expectation
from vmlog.checks.store import CheckFile
from vmlog.checks.travel import member_bytes, merge_member
from vmlog.errors import InvalidInput


def test_member_round_trip_and_merge(tmp_path: Path) -> None:
    sender, receiver = tmp_path / "sender", tmp_path / "receiver"
    sender.mkdir(), receiver.mkdir()
    assert member_bytes(sender) is None
    mtop = Check("mtop", "cat /m", Expectation(NUMBER, 172.4, tolerance=0.5))
    events = Check("events", "wc -l < /e", Expectation(TEXT, "12"))
    CheckFile(sender).save([mtop, events])
    CheckFile(receiver).save([Check("events", "wc -l < /e", Expectation(TEXT, "13"))])
    merged = merge_member(receiver, member_bytes(sender) or b"")
    assert merged.added == ["mtop"] and merged.conflicting == ["events"]
    assert [c.name for c in CheckFile(receiver).load()] == ["events", "mtop"]
    assert CheckFile(receiver).load()[0].expect.value == "13", "the receiver's own check was replaced"
    again = merge_member(receiver, member_bytes(sender) or b"")
    assert again.added == [] and again.same == ["mtop"]


def test_a_hostile_member_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        hostile = b'{"checks": [{"name": "../x", "command": "x", "expect": {"kind": "text", "value": 1}}]}'
        merge_member(tmp_path, hostile)
    assert not (tmp_path / "checks.json").exists()
