"""Project locks: a second process gets Busy naming the operation and pid; a dead holder frees it."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from vmlog import locking
from vmlog.errors import Busy


def _hold(locks: Path, ready, release) -> None:  # runs in a child process
    with locking.project_lock(locks, "alpha", "state save"):
        ready.set()
        release.wait(30)


def test_second_process_gets_busy_with_holder(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    child.start()
    try:
        assert ready.wait(30)
        with pytest.raises(Busy) as caught:
            with locking.project_lock(tmp_path, "alpha", "state restore"):
                pass
        assert "state save" in caught.value.message and str(child.pid) in caught.value.message
        assert caught.value.fix
        assert locking.holder(tmp_path, "alpha") == f"'state save' (pid {child.pid})"
        with locking.project_lock(tmp_path, "beta", "up"):  # other projects are free
            pass
    finally:
        release.set()
        child.join(30)
    with locking.project_lock(tmp_path, "alpha", "state restore"):
        assert locking.holder(tmp_path, "alpha") == f"'state restore' (pid {os.getpid()})"
    assert locking.holder(tmp_path, "alpha") is None


def test_killed_holder_releases_lock(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    child.start()
    assert ready.wait(30)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    with locking.project_lock(tmp_path, "alpha", "state save"):
        pass


def test_multiple_locks_in_order(tmp_path: Path) -> None:
    with locking.project_locks(tmp_path, ["b", "a"], "switch"):
        with pytest.raises(Busy):
            with locking.project_lock(tmp_path, "a", "up"):
                pass
