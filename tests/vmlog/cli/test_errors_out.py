"""How a failed command ends: a full disk behind any error is one line with its fix; --json errors are JSON."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vmlog.cli import errors_out
from vmlog.errors import NotFound, VmlogError

ROOT = Path(__file__).resolve().parents[3]


def test_a_full_disk_under_any_error_is_reported_as_such() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/home/x/.cache/vmlog/downloads/a.part")
    try:
        try:
            raise full
        except OSError as exc:
            raise VmlogError("the bundle is truncated, ask the sender for a new bundle") from exc
    except VmlogError as wrapped:
        message, fix, code, kind = errors_out.describe(wrapped)
    assert code == errors_out.NO_SPACE_EXIT_CODE == 74 and kind == "NoSpace"
    assert message == "no space left on the device writing /home/x/.cache/vmlog/downloads/a.part"
    assert fix is not None and "df -h /home/x/.cache/vmlog/downloads/a.part" in fix
    assert errors_out.describe(OSError(errno.EDQUOT, "quota"))[0].startswith("the disk quota is exhausted")


def test_sqlite_on_a_full_disk_is_a_full_disk() -> None:
    import sqlite3

    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert errors_out.describe(error)[2] == errors_out.NO_SPACE_EXIT_CODE


@pytest.mark.parametrize("argv, expected", [(["state", "list", "--json"], True), (["log"], False),
                                            (["ssh", "p", "--", "cmd", "--json"], False)])  # fmt: skip
def test_json_is_asked_for_by_the_option(argv: list[str], expected: bool) -> None:
    assert errors_out.wants_json(argv) is expected


def test_json_errors_are_json_on_stdout_with_the_exit_code(vmlog_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "vmlog.cli", "project", "show", "nope", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == NotFound.exit_code
    error = json.loads(proc.stdout)["error"]
    assert error["kind"] == "NotFound" and error["exit_code"] == NotFound.exit_code and "nope" in error["message"]
    assert "error:" in proc.stderr  # the person at the terminal reads it too
