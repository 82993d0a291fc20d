"""One mutating operation per project at a time, across processes (CLI and GUI), with ``fcntl.flock``.

The lock file names the operation and pid that hold it, so the second process can say who is
busy. The kernel drops a flock when its holder dies, so a crash never leaves a stale lock.
Read-only commands never take it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vmlog.errors import Busy


def lock_path(locks_dir: Path, project: str) -> Path:
    return Path(locks_dir) / f"project-{project}.lock"


def holder(locks_dir: Path, project: str) -> str | None:
    """What the lock file says about its holder (``"save (pid 123)"``), or None if nobody holds it."""
    path = lock_path(locks_dir, project)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    if not text:
        return "another operation"
    operation, _, pid = text.rpartition(" ")
    return f"'{operation}' (pid {pid})" if pid else f"'{operation}'"


@contextmanager
def project_lock(locks_dir: Path, project: str, operation: str) -> Iterator[None]:
    """Hold the project's lock for the block; raise :class:`Busy` at once if another process holds it."""
    locks_dir = Path(locks_dir)
    locks_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(locks_dir, project)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(
                f"project {project!r} is busy: {_describe(path)} is changing it",
                fix="wait for that operation to finish (see `vml log`), then try again",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{operation} {os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def project_locks(locks_dir: Path, projects: list[str], operation: str) -> Iterator[None]:
    """Lock several projects (switch, rename) in a fixed order so two processes cannot deadlock."""
    ordered = sorted(set(projects))
    if not ordered:
        yield
        return
    with project_lock(locks_dir, ordered[0], operation), project_locks(locks_dir, ordered[1:], operation):
        yield
