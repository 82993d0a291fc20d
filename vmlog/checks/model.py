"""Reproduction checks: a command run in the guest and what its output must be, and judging one output against it.

An analysis that must still reproduce years later is pinned by what it prints ("M_top = 172.4 GeV/c²"):
exact text, a regular expression, or a number within a tolerance (absolute, or relative to the
expected value). A check is plain data so it travels in ``checks.json`` next to the project and in
bundles; judging is a pure function, so the same verdict comes out wherever the output was produced.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from vmlog.errors import InvalidInput

TEXT = "text"
REGEX = "regex"
NUMBER = "number"
KINDS = (TEXT, REGEX, NUMBER)

PASSED = "passed"
DIVERGED = "diverged"
ERROR = "error"  # the check could not be evaluated: the clone did not boot, the agent did not answer
STATUSES = (PASSED, DIVERGED, ERROR)

DEFAULT_TIMEOUT = 600.0
NUMBER_PATTERN = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(NUMBER_PATTERN)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OBSERVED_LIMIT = 2000  # characters of output kept with a result


def check_name(name: str) -> str:
    """``name`` if it can name a check (letters, digits, ``.``, ``_``, ``-``; at most 64), else ``InvalidInput``."""
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid check name {name!r}",
            fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def _regex(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise InvalidInput(f"{what} {pattern!r} is not a regular expression: {exc}") from None


@dataclass(frozen=True)
class Expectation:
    """What a check's output must be.

    ``text``: stdout equals ``value`` (trailing whitespace ignored on both). ``regex``: ``value``
    matches somewhere in stdout (``re.search``, multi-line). ``number``: the first number in stdout,
    or group 1 (else the whole match) of ``pattern``, lies within ``tolerance`` of ``value``; with
    ``relative`` the tolerance is a fraction of ``|value|``.
    """

    kind: str
    value: str | float
    tolerance: float = 0.0
    relative: bool = False
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown expectation kind {self.kind!r}", fix=f"use one of {', '.join(KINDS)}")
        if self.kind == NUMBER:
            value = float(self.value)
            if not math.isfinite(value) or not math.isfinite(self.tolerance) or self.tolerance < 0:
                raise InvalidInput("a number check needs a finite value and a tolerance of zero or more")
            object.__setattr__(self, "value", value)
            if self.pattern is not None:
                _regex(self.pattern, "the number pattern")
        else:
            object.__setattr__(self, "value", str(self.value))
            if self.kind == REGEX:
                _regex(str(self.value), "the pattern")

    def describe(self) -> str:
        """What the output must be, in a few words (the table's EXPECTED column)."""
        if self.kind == TEXT:
            return f"text {self.value!r}"
        if self.kind == REGEX:
            return f"matches /{self.value}/"
        spread = f"{self.tolerance * 100:g}%" if self.relative else f"{self.tolerance:g}"
        return f"{self.value:g} ± {spread}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "value": self.value}
        if self.kind == NUMBER:
            data.update(tolerance=self.tolerance, relative=self.relative, pattern=self.pattern)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expectation:
        pattern = data.get("pattern")
        return cls(
            kind=str(data["kind"]),
            value=data["value"],
            tolerance=float(data.get("tolerance") or 0.0),
            relative=bool(data.get("relative", False)),
            pattern=str(pattern) if pattern is not None else None,
        )


@dataclass(frozen=True)
class Check:
    """A named command run in the guest (``sh -c``) and what it must print."""

    name: str
    command: str
    expect: Expectation
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.command.strip():
            raise InvalidInput(f"check {self.name!r} has no command", fix="give one with --command")
        if not self.timeout > 0:
            raise InvalidInput(f"check {self.name!r} needs a timeout above zero")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "command": self.command, "expect": self.expect.to_dict(), "timeout": self.timeout}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(
            name=str(data["name"]),
            command=str(data["command"]),
            expect=Expectation.from_dict(dict(data["expect"])),
            timeout=float(data.get("timeout") or DEFAULT_TIMEOUT),
        )


@dataclass(frozen=True)
class Verdict:
    """How one output compares with its expectation: the status, what was observed, and why."""

    status: str
    observed: str | None
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def extract_number(expect: Expectation, output: str) -> float | None:
    """The number the check compares: group 1 (or the match) of its pattern, else the first number printed."""
    if expect.pattern is not None:
        match = _regex(expect.pattern, "the number pattern").search(output)
        if match is None:
            return None
        text = match.group(1) if match.re.groups else match.group(0)
        found = _NUMBER.search(text or "")
    else:
        found = _NUMBER.search(output)
    if found is None:
        return None
    try:
        value = float(found.group(0))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def judge(expect: Expectation, exit_code: int, stdout: str) -> Verdict:
    """Compare what the command printed with what it must print; a non-zero exit diverges whatever it printed."""
    shown = stdout.strip()[-OBSERVED_LIMIT:]
    if exit_code != 0:
        return Verdict(DIVERGED, shown, f"the command exited {exit_code}")
    if expect.kind == TEXT:
        same = stdout.rstrip() == str(expect.value).rstrip()
        return Verdict(PASSED if same else DIVERGED, shown, "same text" if same else "other text")
    if expect.kind == REGEX:
        found = _regex(str(expect.value), "the pattern").search(stdout) is not None
        return Verdict(PASSED if found else DIVERGED, shown, "matches" if found else "does not match")
    number = extract_number(expect, stdout)
    if number is None:
        return Verdict(DIVERGED, shown, "no number in the output")
    wanted = float(expect.value)
    allowed = expect.tolerance * abs(wanted) if expect.relative else expect.tolerance
    off = abs(number - wanted)
    inside = off <= allowed * (1 + 1e-12) + 1e-300
    return Verdict(
        PASSED if inside else DIVERGED,
        f"{number:g}",
        f"{number:g} is {off:g} from {wanted:g} ({'within' if inside else 'outside'} {allowed:g})",
    )


def parse_tolerance(text: str) -> tuple[float, bool]:
    """``"0.5"`` -> (0.5, absolute); ``"2%"`` -> (0.02, relative). ``InvalidInput`` for anything else."""
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        raise InvalidInput(
            f"invalid tolerance {text!r}", fix="give a number (absolute) or a percentage such as 2%"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"invalid tolerance {text!r}", fix="give a tolerance of zero or more")
    return (value / 100 if relative else value), relative
