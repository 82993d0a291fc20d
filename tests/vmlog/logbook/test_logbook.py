"""The logbook: rows written before the work, completed after, interrupted rows, notes, filters."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from vmlog.errors import Cancelled
from vmlog.logbook import Logbook


def test_operation_row_exists_while_work_runs(tmp_path: Path) -> None:
    book = Logbook(tmp_path / "log.sqlite")
    with book.operation("alpha", "state save", name="calib") as op:
        rows = book.entries()
        assert [(r.action, r.outcome, r.args) for r in rows] == [("state save", "running", {"name": "calib"})]
        op.state_id = "abc123"
        op.message = "after calibration"
    (row,) = book.entries()
    assert row.outcome == "ok" and row.state_id == "abc123" and row.message == "after calibration"
    assert row.finished is not None and row.duration is not None and row.duration >= 0
    assert "@" in row.who


def test_failed_and_cancelled(tmp_path: Path) -> None:
    book = Logbook(tmp_path / "log.sqlite")
    with pytest.raises(RuntimeError):
        with book.operation("alpha", "up"):
            raise RuntimeError("disk full")
    with pytest.raises(KeyboardInterrupt):
        with book.operation("alpha", "state restore"):
            raise KeyboardInterrupt
    with pytest.raises(Cancelled):
        with book.operation("beta", "switch"):
            raise Cancelled("stopped by the user")
    rows = book.entries()
    assert [(r.action, r.outcome) for r in rows] == [
        ("up", "failed"),
        ("state restore", "cancelled"),
        ("switch", "cancelled"),
    ]
    assert rows[0].message == "disk full"


def _crash_mid_operation(path: Path) -> None:
    book = Logbook(path)
    book.begin("alpha", "state save")
    os.kill(os.getpid(), signal.SIGKILL)


def test_row_of_killed_process_reads_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    child = multiprocessing.get_context("fork").Process(target=_crash_mid_operation, args=(path,))
    child.start()
    child.join(30)
    (row,) = Logbook(path).entries()
    assert row.outcome == "interrupted"


def test_filters_and_notes(tmp_path: Path) -> None:
    book = Logbook(tmp_path / "log.sqlite")
    with book.operation("alpha", "up"):
        pass
    cutoff = time.time()
    time.sleep(0.01)
    with book.operation("beta", "up"):
        pass
    with book.operation("alpha", "down"):
        pass
    book.add_note("calibration constants look off", "alpha", "s1")
    assert [r.action for r in book.entries(project="alpha")] == ["up", "down"]
    assert [(r.project, r.action) for r in book.entries(since=cutoff)] == [("beta", "up"), ("alpha", "down")]
    assert [n.text for n in book.notes(project="alpha", state="s1")] == ["calibration constants look off"]
    history = book.history(project="alpha")
    assert [h.to_dict()["kind"] for h in history] == ["operation", "operation", "note"]
    book.rename_project("alpha", "gamma")
    assert len(book.history(project="gamma")) == 3 and book.history(project="alpha") == []


def test_wal_mode(tmp_path: Path) -> None:
    Logbook(tmp_path / "log.sqlite")
    db = sqlite3.connect(tmp_path / "log.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _open_and_write(path: str, index: int, start) -> None:  # runs in a child process
    from vmlog.logbook.book import Logbook

    start.wait(30)
    with Logbook(Path(path)).operation("race", f"action {index}"):
        pass


def test_many_processes_creating_the_logbook_at_once(tmp_path: Path) -> None:
    import multiprocessing

    from vmlog.logbook.book import Logbook

    mp = multiprocessing.get_context("fork")
    path = tmp_path / "logbook.sqlite"
    start = mp.Event()
    children = [mp.Process(target=_open_and_write, args=(str(path), i, start)) for i in range(12)]
    for child in children:
        child.start()
    start.set()  # all of them race to create the file, switch it to WAL and migrate it
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0] * 12
    rows = Logbook(path).entries(project="race")
    assert sorted(r.action for r in rows) == sorted(f"action {i}" for i in range(12))
