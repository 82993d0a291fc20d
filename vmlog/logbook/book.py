"""The logbook database (SQLite, WAL): operation rows written before the work and completed after.

A row still marked ``running`` whose process is gone (a crash, kill -9, a power cut) reads as
``interrupted``, so the logbook tells the truth about what never finished.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog.errors import Cancelled
from vmlog.logbook.migrations import migrate

OUTCOMES = ("running", "ok", "failed", "cancelled", "interrupted")


def who() -> str:
    """``user@host`` of this process, as written in every row."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still says who
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Entry:
    """One operation as read back from the logbook."""

    id: int
    who: str
    started: float
    finished: float | None
    project: str | None
    state_id: str | None
    action: str
    args: dict[str, Any]
    outcome: str
    duration: float | None
    message: str | None
    kind: str = "operation"
    vm_host: str | None = None  # the libvirt host of the project's VM; None: this machine

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "who": self.who,
            "started": _iso(self.started),
            "finished": _iso(self.finished) if self.finished else None,
            "project": self.project,
            "state": self.state_id,
            "action": self.action,
            "args": self.args,
            "outcome": self.outcome,
            "duration": self.duration,
            "message": self.message,
            "vm_host": self.vm_host,
        }


@dataclass
class Note:
    id: int
    who: str
    created: float
    project: str | None
    state_id: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "note",
            "id": self.id,
            "who": self.who,
            "created": _iso(self.created),
            "project": self.project,
            "state": self.state_id,
            "text": self.text,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def _where(conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    """`` AND``-joined conditions for the filters that were given (``None`` means "no filter")."""
    used = {cond: value for cond, value in conditions.items() if value is not None}
    return "".join(f" AND {cond}" for cond in used), list(used.values())


def _use_wal(db: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch the file to WAL once (it stays WAL): readers never block writers across CLI and GUI.

    The switch needs the file to itself, and SQLite answers "locked" at once (without waiting)
    when another process holds it open at that instant; that only happens while the file is new,
    so a short retry is enough. A file already in WAL mode needs no lock at all.
    """
    for attempt in range(attempts):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


@dataclass
class Operation:
    """Handle on a running row: the work fills in the state it produced and a closing message."""

    id: int
    project: str | None
    action: str
    state_id: str | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    vm_host: str | None = None  # set by the work when it learns the host (a project made on one)


class Logbook:
    """One logbook file. Connections are short-lived per call so CLI and GUI processes share it safely."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            _use_wal(db)
            migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    # -- writing --------------------------------------------------------------------------
    def begin(self, project: str | None, action: str, state: str | None = None, **args: Any) -> Operation:
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO operations (who, host, pid, started, project, state_id, action, args, outcome, vm_host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', (SELECT vm_host FROM project_hosts WHERE project = ?))",
                (
                    who(),
                    socket.gethostname(),
                    os.getpid(),
                    time.time(),
                    project,
                    state,
                    action,
                    json.dumps(args, default=str, sort_keys=True),
                    project,
                ),
            )
            return Operation(id=int(cur.lastrowid or 0), project=project, action=action, state_id=state)

    def finish(self, op: Operation, outcome: str, message: str | None = None) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        now = time.time()
        with self._connect() as db:
            db.execute(
                "UPDATE operations SET finished = ?, outcome = ?, message = ?, duration = ? - started,"
                " state_id = COALESCE(?, state_id), project = COALESCE(?, project), vm_host = COALESCE(?, vm_host)"
                " WHERE id = ?",
                (now, outcome, message, now, op.state_id, op.project, op.vm_host, op.id),
            )

    @contextmanager
    def operation(
        self, project: str | None, action: str, state: str | None = None, **args: Any
    ) -> Iterator[Operation]:
        """Write the row before the work; mark it ok, failed (with the error) or cancelled after."""
        op = self.begin(project, action, state, **args)
        try:
            yield op
        except (KeyboardInterrupt, Cancelled) as exc:
            self.finish(op, "cancelled", op.message or str(exc) or "interrupted by the user")
            raise
        except BaseException as exc:
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.finish(op, "failed", text)
            raise
        else:
            self.finish(op, "ok", op.message)

    def add_note(self, text: str, project: str | None, state: str | None) -> Note:
        now = time.time()
        author = who()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO notes (who, created, project, state_id, text) VALUES (?, ?, ?, ?, ?)",
                (author, now, project, state, text),
            )
        return Note(int(cur.lastrowid or 0), author, now, project, state, text)

    def rename_project(self, old: str, new: str) -> None:
        """Keep a renamed project's history (and the host it lives on) under its new name."""
        with self._connect() as db:
            db.execute("UPDATE operations SET project = ? WHERE project = ?", (new, old))
            db.execute("UPDATE notes SET project = ? WHERE project = ?", (new, old))
            db.execute("DELETE FROM project_hosts WHERE project = ?", (new,))
            db.execute("UPDATE project_hosts SET project = ? WHERE project = ?", (new, old))

    def set_project_host(self, project: str, vm_host: str | None) -> None:
        """The host project ``project``'s VM lives on, named in every row of it begun from now on (None: here)."""
        with self._connect() as db:
            if vm_host is None:
                db.execute("DELETE FROM project_hosts WHERE project = ?", (project,))
            else:
                db.execute("INSERT OR REPLACE INTO project_hosts (project, vm_host) VALUES (?, ?)", (project, vm_host))

    # -- reading --------------------------------------------------------------------------
    def entries(
        self,
        *,
        project: str | None = None,
        since: float | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Operations, oldest first; a dead process's ``running`` row reads as ``interrupted``."""
        sql = (
            "SELECT id, who, host, pid, started, finished, project, state_id, action, args, outcome,"
            " duration,"
            " message, vm_host FROM operations WHERE 1=1"
        )
        where, params = _where({"project = ?": project, "started >= ?": since, "state_id = ?": state})
        sql += where + " ORDER BY started, id"
        if limit is not None:
            sql = (
                f"SELECT * FROM ({sql.replace(' ORDER BY started, id', ' ORDER BY started DESC, id DESC')}"
                f" LIMIT {int(limit)}) ORDER BY started, id"
            )
        host = socket.gethostname()
        with self._connect() as db:
            rows = db.execute(sql, params).fetchall()
        result = []
        for (
            rid,
            author,
            row_host,
            pid,
            started,
            finished,
            proj,
            state_id,
            action,
            args,
            outcome,
            duration,
            message,
            vm_host,
        ) in rows:
            if outcome == "running" and not (row_host == host and _pid_alive(pid)):
                outcome = "interrupted"
            result.append(
                Entry(
                    rid,
                    author,
                    started,
                    finished,
                    proj,
                    state_id,
                    action,
                    json.loads(args or "{}"),
                    outcome,
                    duration,
                    message,
                    vm_host=vm_host,
                )
            )
        return result

    def notes(
        self, *, project: str | None = None, state: str | None = None, since: float | None = None
    ) -> list[Note]:
        sql = "SELECT id, who, created, project, state_id, text FROM notes WHERE 1=1"
        where, params = _where({"project = ?": project, "state_id = ?": state, "created >= ?": since})
        with self._connect() as db:
            rows = db.execute(sql + where + " ORDER BY created, id", params).fetchall()
        return [Note(*row) for row in rows]

    def history(self, *, project: str | None = None, since: float | None = None) -> list[Entry | Note]:
        """Operations and notes together, oldest first: what ``vml log`` shows."""
        items: list[Entry | Note] = [
            *self.entries(project=project, since=since),
            *self.notes(project=project, since=since),
        ]
        items.sort(key=lambda item: item.started if isinstance(item, Entry) else item.created)
        return items


def open_logbook(path: Path | None = None) -> Logbook:
    """The logbook of the current vmlog home (or of ``path``)."""
    if path is None:
        from vmlog.paths import home

        path = home().logbook
    return Logbook(path)
