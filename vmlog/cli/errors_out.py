"""How a failed ``vml`` command ends: one line of message, the fix, an exit code, and JSON for ``--json``.

Kept apart from :mod:`vmlog.cli.main` so the entry point imports rich only when there is something to say.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Sequence
from typing import Any

INTERNAL_ERROR_EXIT_CODE = 70  # sysexits EX_SOFTWARE: an exception that is not a product error, i.e. a bug
INTERRUPTED_EXIT_CODE = 130  # Ctrl-C, as a shell reports it (128 + SIGINT); also Cancelled's code
NO_SPACE_EXIT_CODE = 74  # sysexits EX_IOERR: the disk (or the quota) is full
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--``)."""
    for word in argv:
        if word == "--":
            return False
        if word == "--json":
            return True
    return False


def no_space_in(exc: BaseException) -> OSError | None:
    """The "no space left" error behind ``exc`` (itself, or what it was raised from), if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return current
        current = current.__cause__ or current.__context__
    return None


def _disk_failure(exc: BaseException) -> str | None:
    """What SQLite says when the disk under the logbook is full or fails a write, else None.

    Looked at by name: the entry point does not import sqlite3 to start.
    """
    if type(exc).__module__ != "sqlite3":
        return None
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == 13:  # SQLITE_FULL
        return "no space left on the device (the logbook could not be written)"
    if code == 10:  # SQLITE_IOERR: a failed write, most often a full disk
        return f"the disk failed a write of the logbook ({exc}); it is probably full"
    return None


def _no_space_text(error: OSError) -> tuple[str, str]:
    where = f" writing {error.filename}" if error.filename else ""
    what = "the disk quota is exhausted" if error.errno == errno.EDQUOT else "no space left on the device"
    fix = (
        f"free space on the file system that holds {error.filename} (`df -h {error.filename}`), then run the command"
        " again; an interrupted pull resumes where it stopped"
        if error.filename
        else "free space on the disk of the vmlog home (`df -h ~`), then run the command again;"
        " an interrupted pull resumes where it stopped"
    )
    return f"{what}{where}", fix


def describe(exc: BaseException) -> tuple[str, str | None, int, str]:
    """``(message, fix, exit code, kind)`` for a failure that ended a command."""
    from vmlog.errors import ReportableError  # here: the error tree imports the backend contract

    full = no_space_in(exc)
    if full is not None:
        message, fix = _no_space_text(full)
        return message, fix, NO_SPACE_EXIT_CODE, "NoSpace"
    disk = _disk_failure(exc)
    if disk is not None:
        return disk, _no_space_text(OSError(errno.ENOSPC, "", None))[1], NO_SPACE_EXIT_CODE, "NoSpace"
    if isinstance(exc, ReportableError):
        # the class's code: an instance may carry an attribute of that name for its own ends
        return exc.message, exc.fix, type(exc).exit_code, type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None, INTERRUPTED_EXIT_CODE, "Interrupted"
    if type(exc).__name__ == "Abort":  # typer.Abort: a confirmation answered no, or Ctrl-C at a prompt
        return "aborted", None, INTERRUPTED_EXIT_CODE, "Aborted"
    summary = " ".join(str(exc).split())[:400] or "(no message)"
    message = f"internal error: {type(exc).__name__}: {summary} (run again with VMLOG_DEBUG=1 for the traceback)"
    return message, None, INTERNAL_ERROR_EXIT_CODE, "InternalError"


def report_failure(exc: BaseException, *, as_json: bool = False) -> int:
    """Print why the command failed (stderr; also JSON on stdout with ``as_json``) and return its exit code."""
    from vmlog.cli.output import err, report_error

    message, fix, code, kind = describe(exc)
    if kind in ("Interrupted", "Aborted", "InternalError"):
        err.print(message)
    else:
        report_error(message, fix)
    if as_json:
        error: dict[str, Any] = {"kind": kind, "message": message, "fix": fix, "exit_code": code}
        sys.stdout.write(json.dumps({"error": error}, indent=2) + "\n")
        sys.stdout.flush()
    return code
