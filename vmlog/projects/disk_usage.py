"""A project's disk use and state count without a ``stat`` of each of its thousands of files.

``vml project list`` shows both for every project. Summing the allocated blocks of every layer,
checkpoint and memory image costs a ``stat`` a file (9,000 files at 3,000 states), so the sizes are
kept in ``usage.json`` beside ``project.json``: for ``layers/``, ``layers/checkpoints/`` and
``states/``, the directory's stamp (modification time, link count), the bytes of each entry and
their sum. Frozen files never change once named (a layer is frozen when a save puts a new live
layer on it; checkpoints and state directories are complete when they get their names), so:

* a directory whose stamp is unchanged contributes its cached sum, with no listing at all;
* one whose stamp moved (a save, a restore, a removal, a consolidation, by any writer) is listed by
  name, and only the entries not seen before are measured;
* the live layers, which grow while the VM runs, and the few top-level files are measured every time,
  and never cached (a layer cached while live is measured again once it is frozen);
* a frozen layer rewritten in place (a removal rebases a child's layer, copying data into it) is
  forgotten by the writer (:func:`forget_layers`) and measured again.

The file is a cache: if it is missing, unreadable or of another format it is rebuilt from the files,
and a home that cannot be written still gets the right figures, the slow way. A state directory
counts as a state only once its ``state.json`` exists, as :class:`~vmlog.projects.store.ProjectFiles`
has it; one without (a save in progress, or debris) is looked at again by every reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog import fsutil

Measure = Callable[[str], "int | None"]

USAGE_FILE = "usage.json"
USAGE_FORMAT = 1
STATE_RECORD = "state.json"
LAYERS_DIR = "layers"
CHECKPOINTS_DIR = "checkpoints"
STATES_DIR = "states"


@dataclass(frozen=True)
class Usage:
    """What a listing shows of a project's files."""

    disk_bytes: int  # allocated bytes of every file of the project (layers are sparse)
    states: int  # state directories holding a ``state.json``


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_nlink]


def _allocated(path: str) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_blocks * 512
    except OSError:
        return 0


def _tree_allocated(root: str) -> int:
    """Allocated bytes of every file under ``root`` (a state directory: a record and maybe a memory image)."""
    total = 0
    pending = [root]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
    return total


class DirectoryCache:
    """The cached entries of one directory: name -> bytes (None: measure again every time)."""

    def __init__(self, path: str, record: dict[str, Any] | None) -> None:
        self.path = path  # a string: a listing of fifty projects builds no Path objects here
        record = record or {}
        self.stamp: list[int] | None = record.get("stamp")
        self.entries: dict[str, int | None] = dict(record.get("entries", {}))
        self.changed = False

    def to_dict(self) -> dict[str, Any]:
        return {"stamp": self.stamp, "entries": self.entries}

    def refresh(self, measure: Measure, volatile: set[str]) -> None:
        """Bring the entries up to date with the directory: list it only if its stamp moved."""
        for name in volatile & self.entries.keys():
            if self.entries[name] is not None:  # measured before it became live: measure it again once frozen
                self.entries[name] = None
                self.changed = True
        stamp = _stamp(self.path)
        if stamp == self.stamp and (stamp is not None or not self.entries):
            return
        self.changed = True
        self.stamp = stamp
        try:
            names = os.listdir(self.path)
        except OSError:
            names = []
        old = self.entries
        self.entries = {}
        for name in names:
            cached = old.get(name)
            if name in volatile or name.startswith("."):  # live, or a file still being written
                self.entries[name] = None
            elif cached is None:
                self.entries[name] = measure(os.path.join(self.path, name))
            else:
                self.entries[name] = cached

    def total(self, volatile: set[str]) -> int:
        """The sum of the entries, the volatile ones (and any not yet known) measured now."""
        total = 0
        for name, size in self.entries.items():
            if size is None or name in volatile:
                total += _allocated(os.path.join(self.path, name))
            else:
                total += size
        return total


def _measure_state_dir(path: str) -> int | None:
    """A complete state directory's bytes; None while it has no record (look again next time)."""
    if not os.path.isfile(os.path.join(path, STATE_RECORD)):
        return None
    return _tree_allocated(path)


def _measure_file(path: str) -> int | None:
    """A file's bytes; 0 for a directory (``layers/checkpoints`` is counted on its own)."""
    return _allocated(path) if os.path.isfile(path) else 0


def read_usage(root: str | os.PathLike[str], live_layers: set[str]) -> Usage:
    """Disk use and state count of the project in ``root``; ``live_layers`` are the file names of its live layers."""
    top = os.fspath(root)
    cache_path = os.path.join(top, USAGE_FILE)
    try:
        with open(cache_path, encoding="utf-8") as f:
            record = json.load(f)
        if record.get("format") != USAGE_FORMAT:
            record = {}
    except (OSError, ValueError, AttributeError):
        record = {}
    layers = os.path.join(top, LAYERS_DIR)
    dirs = {
        "layers": DirectoryCache(layers, record.get("layers")),
        "checkpoints": DirectoryCache(os.path.join(layers, CHECKPOINTS_DIR), record.get("checkpoints")),
        "states": DirectoryCache(os.path.join(top, STATES_DIR), record.get("states")),
    }
    dirs["layers"].refresh(_measure_file, volatile=set(live_layers))
    dirs["checkpoints"].refresh(_measure_file, set())
    dirs["states"].refresh(_measure_state_dir, set())
    total = dirs["layers"].total(set(live_layers)) + dirs["checkpoints"].total(set())
    states = dirs["states"]
    total += sum(size for size in states.entries.values() if size is not None)
    pending = [name for name, size in states.entries.items() if size is None]
    total += sum(_tree_allocated(os.path.join(states.path, name)) for name in pending)
    if any(d.changed for d in dirs.values()):
        try:
            record = {"format": USAGE_FORMAT, **{key: d.to_dict() for key, d in dirs.items()}}
            fsutil.atomic_write_text(Path(cache_path), json.dumps(record, separators=(",", ":")))
        except OSError:
            pass  # a home that cannot be written: the right figures, measured again next time
    total += _top_level_bytes(top)  # after the cache is written: it is one of the project's files
    # a directory seen before its record was written (its own stamp moved, not that of states/) counts once it has one
    completed = sum(1 for name in pending if os.path.isfile(os.path.join(states.path, name, STATE_RECORD)))
    return Usage(disk_bytes=total, states=len(states.entries) - len(pending) + completed)


def forget_layers(root: Path, names: list[str]) -> None:
    """Measure these layers again at the next reading: they were rewritten in place (a rebase copies data in)."""
    cache_path = Path(root) / USAGE_FILE
    try:
        record = json.loads(cache_path.read_text(encoding="utf-8"))
        entries = record["layers"]["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no cache (or a broken one, rebuilt when next read): nothing to forget
    for name in names:
        if name in entries:
            entries[name] = None
    try:
        fsutil.atomic_write_text(cache_path, json.dumps(record, separators=(",", ":")))
    except OSError:
        cache_path.unlink(missing_ok=True)


def _top_level_bytes(root: str) -> int:
    """The project's own files and any directory other than layers and states, measured every time (a few)."""
    total = 0
    try:
        entries = os.scandir(root)
    except OSError:
        return 0
    with entries:
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in (LAYERS_DIR, STATES_DIR):
                        total += _tree_allocated(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total
