"""``checks.json``: a readable file in the project directory, read with limits, refused clearly when malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmlog.checks.model import NUMBER, TEXT, Check, Expectation
from vmlog.checks.store import CHECKS_FILE, CheckFile, checks_from_json
from vmlog.errors import InvalidInput


def test_round_trip_keeps_order_and_is_readable(tmp_path: Path) -> None:
    book = CheckFile(tmp_path)
    assert book.load() == []
    checks = [
        Check("zeta", "echo z", Expectation(TEXT, "z")),
        Check("alpha", "cat /n", Expectation(NUMBER, 1.5, tolerance=0.1)),
    ]
    book.save(checks)
    assert book.load() == checks
    text = (tmp_path / CHECKS_FILE).read_text()
    assert "\n  " in text and json.loads(text)["format"] == 1
    book.save([])
    assert not (tmp_path / CHECKS_FILE).exists()


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[]",
        '{"checks": {}}',
        '{"format": 9, "checks": []}',
        '{"checks": [{"name": "a"}]}',
        '{"checks": [{"name": "a b", "command": "x", "expect": {"kind": "text", "value": ""}}]}',
        "[" * 100 + "]" * 100,
    ],
)
def test_malformed_files_are_refused(data: str) -> None:
    with pytest.raises(InvalidInput):
        checks_from_json(data, what="checks.json")


def test_a_name_given_twice_is_refused() -> None:
    item = {"name": "a", "command": "true", "expect": {"kind": "text", "value": ""}}
    with pytest.raises(InvalidInput, match="twice"):
        checks_from_json(json.dumps({"checks": [item, item]}), what="checks.json")
