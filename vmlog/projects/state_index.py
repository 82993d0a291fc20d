"""One file listing every state record of a project, so listings read one file instead of one per state.

The ``state.json`` files stay the truth; the index is a cache of them, kept beside (not inside)
``states/``. It records a stamp of the ``states/`` directory (its modification time and link
count, which change whenever a state directory appears or goes) and is thrown away before every
change, then written anew after it: a crash mid-change, a state added by an older vmlog or a
stamp that does not match make the next reader rebuild it from the records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmlog import fsutil
from vmlog.projects.model import State

INDEX_FILE = "states-index.json"
INDEX_FORMAT = 1

Scan = Callable[[], dict[str, State]]


def directory_stamp(states_dir: Path) -> list[int]:
    """What changes whenever an entry of ``states/`` is added or removed (``[0, 0]`` if it is missing)."""
    try:
        st = os.stat(states_dir)
    except FileNotFoundError:
        return [0, 0]
    return [st.st_mtime_ns, st.st_nlink]


class StateIndex:
    """The index file of one project; ``scan`` reads every ``state.json`` (the slow way, for rebuilds)."""

    def __init__(self, path: Path, states_dir: Path, scan: Scan) -> None:
        self.path = Path(path)
        self.states_dir = Path(states_dir)
        self.scan = scan

    def load(self) -> dict[str, State]:
        """Every state, from the index if it is current, else from the records (and the index rewritten)."""
        cached = self._read()
        if cached is not None:
            return cached
        return self.rebuild()

    def rebuild(self) -> dict[str, State]:
        stamp = directory_stamp(self.states_dir)  # taken first: a change during the scan leaves it stale
        states = self.scan()
        self._write(states, stamp)
        return states

    def invalidate(self) -> None:
        """Forget the index before a change, so that no crash can leave it naming the old records."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def store(self, states: dict[str, State]) -> None:
        """Record ``states`` (the records just written) as the index of the directory as it now is."""
        self._write(states, directory_stamp(self.states_dir))

    def _read(self) -> dict[str, State] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_bytes())
            if data.get("format") != INDEX_FORMAT or data.get("stamp") != directory_stamp(self.states_dir):
                return None
            return {record["id"]: State.from_dict(record) for record in data["states"]}
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _write(self, states: dict[str, State], stamp: list[int]) -> None:
        data = {"format": INDEX_FORMAT, "stamp": stamp, "states": [s.to_dict() for s in states.values()]}
        try:
            fsutil.atomic_write_text(self.path, json.dumps(data, separators=(",", ":")))
        except OSError:
            pass  # a read-only home still lists its states, the slow way
