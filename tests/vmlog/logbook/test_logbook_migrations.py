"""Versioned migrations: applied once and in order, old databases upgraded, newer ones refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vmlog.errors import VmlogError
from vmlog.logbook import Logbook, migrations


def test_fresh_database_reaches_last_version(tmp_path: Path) -> None:
    Logbook(tmp_path / "log.sqlite")
    db = sqlite3.connect(tmp_path / "log.sqlite")
    assert migrations.current_version(db) == len(migrations.MIGRATIONS)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"operations", "notes", "schema_version"} <= tables


def test_old_database_is_upgraded_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(db, migrations.MIGRATIONS[:1])  # a logbook written by version-1 vmlog
    db.execute("INSERT INTO operations (who, host, pid, started, action) VALUES ('u@h', 'h', 1, 1.0, 'up')")
    assert migrations.current_version(db) == 1
    db.close()
    book = Logbook(path)
    assert [e.action for e in book.entries()] == ["up"]
    book.add_note("works after the upgrade", "p", None)
    assert migrations.current_version(sqlite3.connect(path)) == len(migrations.MIGRATIONS)


def test_migrations_run_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def step(db: sqlite3.Connection) -> None:
        calls.append(1)
        db.execute("CREATE TABLE t (x)")

    db = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    assert migrations.migrate(db, [step]) == 1
    assert migrations.migrate(db, [step]) == 1
    assert calls == [1]


def test_failed_migration_keeps_previous_version(tmp_path: Path) -> None:
    def good(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE a (x)")

    def bad(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE b (x)")
        raise RuntimeError("half-way")

    db = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    with pytest.raises(RuntimeError):
        migrations.migrate(db, [good, bad])
    assert migrations.current_version(db) == 1
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "b" not in tables


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    Logbook(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO schema_version (version) VALUES (99)")
    db.close()
    with pytest.raises(VmlogError) as caught:
        Logbook(path)
    assert "newer vmlog" in caught.value.message and caught.value.fix
