"""Versioned schema of the logbook database: an ordered list of migrations and the code that applies them.

Each migration runs once, in its own transaction, and bumps ``schema_version``; a database written
by a newer vmlog (a version above the last migration) is refused rather than damaged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from vmlog.errors import VmlogError


def _m1_operations(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE operations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            who TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started REAL NOT NULL,
            finished REAL,
            project TEXT,
            state_id TEXT,
            action TEXT NOT NULL,
            args TEXT NOT NULL DEFAULT '{}',
            outcome TEXT NOT NULL DEFAULT 'running',
            duration REAL,
            message TEXT
        )
        """
    )
    db.execute("CREATE INDEX operations_project_started ON operations (project, started)")


def _m2_notes(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            who TEXT NOT NULL,
            created REAL NOT NULL,
            project TEXT,
            state_id TEXT,
            text TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX notes_project_state ON notes (project, state_id)")


def _m3_vm_hosts(db: sqlite3.Connection) -> None:
    """Each row names the host the project's VM lives on (NULL: this machine), kept per project as it is created."""
    db.execute("ALTER TABLE operations ADD COLUMN vm_host TEXT")
    db.execute("CREATE TABLE project_hosts (project TEXT PRIMARY KEY, vm_host TEXT NOT NULL)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_m1_operations, _m2_notes, _m3_vm_hosts]


def current_version(db: sqlite3.Connection) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(
    db: sqlite3.Connection, migrations: list[Callable[[sqlite3.Connection], None]] | None = None
) -> int:
    """Bring the schema up to date; return the version reached."""
    steps = MIGRATIONS if migrations is None else migrations
    version = current_version(db)
    if version > len(steps):
        raise VmlogError(
            f"the logbook was written by a newer vmlog (schema {version}, this one knows {len(steps)})",
            fix="upgrade vmlog, or point VMLOG_HOME at another directory",
        )
    for number in range(version + 1, len(steps) + 1):
        with db:  # one transaction per step: a crash leaves the previous version intact
            db.execute("BEGIN IMMEDIATE")
            if current_version(db) >= number:  # another process migrated meanwhile
                continue
            steps[number - 1](db)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    return current_version(db)
