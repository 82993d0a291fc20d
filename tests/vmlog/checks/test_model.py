"""Judging a check's output: exact text, a regular expression, a number within an absolute or relative tolerance."""

from __future__ import annotations

import pytest

from vmlog.checks.model import (
    DIVERGED,
    NUMBER,
    PASSED,
    REGEX,
    TEXT,
    Check,
    Expectation,
    extract_number,
    judge,
    parse_tolerance,
)
from vmlog.errors import InvalidInput


def test_exact_text_ignores_only_trailing_whitespace() -> None:
    expect = Expectation(TEXT, "M_top = 172.4")
    assert judge(expect, 0, "M_top = 172.4\n").status == PASSED
    assert judge(expect, 0, " M_top = 172.4\n").status == DIVERGED
    assert judge(expect, 0, "M_top = 172.5\n").status == DIVERGED


def test_regex_searches_the_output() -> None:
    expect = Expectation(REGEX, r"^events: \d+$")
    assert judge(expect, 0, "header\nevents: 1204\n").status == PASSED
    assert judge(expect, 0, "events: many\n").status == DIVERGED


def test_number_within_absolute_and_relative_tolerance() -> None:
    absolute = Expectation(NUMBER, 172.4, tolerance=0.5)
    assert judge(absolute, 0, "M_top = 172.7 GeV\n").status == PASSED
    verdict = judge(absolute, 0, "M_top = 173.0 GeV\n")
    assert verdict.status == DIVERGED and verdict.observed == "173"
    relative = Expectation(NUMBER, 200.0, tolerance=0.01, relative=True)
    assert judge(relative, 0, "201.9").status == PASSED
    assert judge(relative, 0, "202.1").status == DIVERGED


def test_number_taken_from_a_pattern_group() -> None:
    expect = Expectation(NUMBER, 3.0, pattern=r"mass=(\S+)")
    assert extract_number(expect, "run 17\nmass=3.0e0 width=2") == 3.0
    assert judge(expect, 0, "run 17\nmass=3.0e0").status == PASSED
    assert judge(expect, 0, "run 3\n").status == DIVERGED  # the pattern finds nothing


def test_a_failing_command_diverges_whatever_it_printed() -> None:
    verdict = judge(Expectation(TEXT, "ok"), 2, "ok\n")
    assert verdict.status == DIVERGED and "exited 2" in verdict.detail


def test_no_number_diverges() -> None:
    assert judge(Expectation(NUMBER, 1.0, tolerance=1), 0, "nothing here").status == DIVERGED


@pytest.mark.parametrize(("text", "parsed"), [("0.5", (0.5, False)), ("2%", (0.02, True)), (" 0 ", (0.0, False))])
def test_parse_tolerance(text: str, parsed: tuple[float, bool]) -> None:
    assert parse_tolerance(text) == pytest.approx(parsed)


@pytest.mark.parametrize("text", ["-1", "abc", "nan", "1%%"])
def test_bad_tolerance_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tolerance(text)


def test_check_round_trips_and_refuses_bad_input() -> None:
    check = Check("mtop", "cat /data/mtop", Expectation(NUMBER, 172.4, tolerance=0.02, relative=True, pattern="(.*)"))
    assert Check.from_dict(check.to_dict()) == check
    with pytest.raises(InvalidInput):
        Check("bad name", "true", Expectation(TEXT, ""))
    with pytest.raises(InvalidInput):
        Check("empty", "  ", Expectation(TEXT, ""))
    with pytest.raises(InvalidInput):
        Expectation(REGEX, "(")
    with pytest.raises(InvalidInput):
        Expectation("fuzzy", "x")


def test_describe_says_what_must_come_out() -> None:
    assert Expectation(NUMBER, 172.4, tolerance=0.5).describe() == "172.4 ± 0.5"
    assert Expectation(NUMBER, 172.4, tolerance=0.01, relative=True).describe() == "172.4 ± 1%"
    assert Expectation(REGEX, "a+").describe() == "matches /a+/"
