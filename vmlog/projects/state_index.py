"""One file listing every state record of a project, so listings read one file instead of one per state.

The ``state.json`` files stay the truth; the index is a cache of them, kept beside (not inside)
``states/``: a journal of JSON lines, one per change (a record put, a state id deleted), each with
the stamp of the ``states/`` directory (its modification time and link count) after the change.
A save appends one line, whatever the number of states. VM specs, the bulk of a record and the
same in most states, are written once per distinct spec when the file is rewritten (rebuilt or
compacted) and referred to by key. Every change first moves the stamp
(:meth:`StateIndex.begin`), so a crash mid-change, or a state written by anything else, leaves a
last line whose stamp does not match: the next reader rebuilds the file from the records. A
journal grown well past the number of states is rewritten compactly when next read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmlog import fsutil
from vmlog.projects.model import STATE_FORMAT, State

INDEX_FILE = "states-index.jsonl"
INDEX_FORMAT = 2
FIELDS = ("id", "parent", "name", "message", "author", "created", "layers", "spec", "memory", "release_mounts",
          "backend", "native_id")  # a record is a list of these, in this order: smaller and faster than objects
COMPACT_SLACK = 64  # lines beyond one per state tolerated before a rewrite

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
        read = self._read()
        if read is None:
            return self.rebuild()
        states, lines, inline_specs = read
        if lines > len(states) + COMPACT_SLACK or inline_specs > COMPACT_SLACK:
            self._rewrite(states, directory_stamp(self.states_dir))
        return states

    def rebuild(self) -> dict[str, State]:
        stamp = directory_stamp(self.states_dir)  # taken first: a change during the scan leaves it stale
        states = self.scan()
        self._rewrite(states, stamp)
        return states

    def begin(self) -> None:
        """Move the stamp before a change, so that no crash can leave the index looking current."""
        if not self.states_dir.is_dir():
            return
        st = os.stat(self.states_dir)
        os.utime(self.states_dir, ns=(st.st_atime_ns, max(time.time_ns(), st.st_mtime_ns + 1)))

    def put(self, state: State) -> None:
        """Record ``state`` (just written to its ``state.json``)."""
        self._append({"put": _values(state.to_dict())})

    def delete(self, state_id: str) -> None:
        """Record that ``state_id`` is gone."""
        self._append({"del": state_id})

    def _append(self, entry: dict[str, Any]) -> None:
        entry["stamp"] = directory_stamp(self.states_dir)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, separators=(",", ":")) + "\n")
        except OSError:
            pass  # the next reader rebuilds it

    def _read(self) -> tuple[dict[str, State], int, int] | None:
        """States, lines and records carrying their own spec; None if the index is missing, unreadable or stale."""
        try:
            text = self.path.read_text(encoding="utf-8")
            if not text.endswith("\n"):
                return None
            entries = json.loads("[" + text.replace("\n", ",")[:-1] + "]")
            head = entries[0]
            if head.get("format") != INDEX_FORMAT or head.get("fields") != list(FIELDS):
                return None
            states: dict[str, State] = {}
            specs: dict[str, dict[str, Any]] = {}
            inline = 0
            for entry in entries[1:]:
                if "put" in entry:
                    values = entry["put"]
                    spec = values[7]
                    if isinstance(spec, str):
                        values[7] = specs[spec]
                    else:
                        inline += 1
                    state = State(*values)
                    states[state.id] = state
                elif "del" in entry:
                    states.pop(entry["del"], None)
                elif "spec" in entry:
                    specs[entry["key"]] = entry["spec"]
            stamp = entries[-1].get("stamp")
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None
        if stamp != directory_stamp(self.states_dir):
            return None
        return states, len(entries), inline

    def _rewrite(self, states: dict[str, State], stamp: list[int]) -> None:
        lines = [json.dumps({"format": INDEX_FORMAT, "fields": list(FIELDS)})]
        keys: dict[str, str] = {}
        for state in states.values():
            record = state.to_dict()
            spec_text = json.dumps(record["spec"], sort_keys=True, separators=(",", ":"))
            key = keys.get(spec_text)
            if key is None:
                key = keys[spec_text] = hashlib.sha1(spec_text.encode()).hexdigest()[:16]
                lines.append(f'{{"key":"{key}","spec":{spec_text}}}')
            record["spec"] = key
            lines.append(json.dumps({"put": _values(record)}, separators=(",", ":")))
        lines.append(json.dumps({"stamp": stamp}))
        try:
            fsutil.atomic_write_text(self.path, "\n".join(lines) + "\n")
        except OSError:
            pass  # a read-only home still lists its states, the slow way


def _values(record: dict[str, Any]) -> list[Any]:
    if record.get("format", STATE_FORMAT) != STATE_FORMAT:
        raise ValueError(f"state record format {record.get('format')} is not {STATE_FORMAT}")
    return [record[name] for name in FIELDS]
