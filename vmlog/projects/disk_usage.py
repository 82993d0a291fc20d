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

USAGE_FILE = "usage.json"  # the sums: all a listing reads while nothing changed
ENTRIES_FILE = "usage-entries.json"  # each entry's bytes: read only when a directory moved
USAGE_FORMAT = 2
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


def tree_allocated(root: str) -> int:
    """Allocated bytes of every file under ``root`` (a state directory, or a whole project), one ``scandir``
    a directory."""
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
    return tree_allocated(path)


def _measure_file(path: str) -> int | None:
    """A file's bytes; 0 for a directory (``layers/checkpoints`` is counted on its own)."""
    return _allocated(path) if os.path.isfile(path) else 0


def read_usage(root: str | os.PathLike[str], live_layers: set[str]) -> Usage:
    """Disk use and state count of the project in ``root``; ``live_layers`` are the file names of its live layers."""
    top = os.fspath(root)
    quick = _read_summary(top, live_layers)
    if quick is not None:
        return quick
    cache_path = os.path.join(top, ENTRIES_FILE)
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
    summary: dict[str, Any] = {"format": USAGE_FORMAT}
    for key, cache in dirs.items():
        volatile = set(live_layers) if key == "layers" else set()
        unknown = sorted(name for name, size in cache.entries.items() if size is None or name in volatile)
        known = sum(size for name, size in cache.entries.items() if size is not None and name not in volatile)
        summary[key] = {"stamp": cache.stamp, "sum": known, "unknown": unknown, "count": len(cache.entries)}
    try:
        if any(d.changed for d in dirs.values()) or not os.path.isfile(cache_path):
            entries = {"format": USAGE_FORMAT, **{key: d.to_dict() for key, d in dirs.items()}}
            fsutil.atomic_write_text(Path(cache_path), json.dumps(entries, separators=(",", ":")))
        fsutil.atomic_write_text(Path(top) / USAGE_FILE, json.dumps(summary, separators=(",", ":")))
    except OSError:
        pass  # a home that cannot be written: the right figures, measured again next time
    return _from_summary(top, summary)


def _read_summary(top: str, live_layers: set[str]) -> Usage | None:
    """The figures from the small summary file alone, if no directory moved since it was written."""
    try:
        with open(os.path.join(top, USAGE_FILE), encoding="utf-8") as f:
            summary = json.load(f)
        if summary.get("format") != USAGE_FORMAT:
            return None
        paths = {"layers": os.path.join(top, LAYERS_DIR), "states": os.path.join(top, STATES_DIR)}
        paths["checkpoints"] = os.path.join(paths["layers"], CHECKPOINTS_DIR)
        for key, path in paths.items():
            stamp = summary[key]["stamp"]
            if _stamp(path) != stamp or (stamp is None and summary[key]["count"]):
                return None
        if not live_layers <= set(summary["layers"]["unknown"]):
            return None  # a layer measured before it became live
        return _from_summary(top, summary)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _from_summary(top: str, summary: dict[str, Any]) -> Usage:
    """Cached sums plus what is measured every time: live layers, files still being written, the project's own files."""
    total = 0
    states = 0
    for key, base in (("layers", LAYERS_DIR), ("checkpoints", os.path.join(LAYERS_DIR, CHECKPOINTS_DIR)),
                      ("states", STATES_DIR)):
        part = summary[key]
        directory = os.path.join(top, base)
        total += part["sum"]
        if key == "states":
            unknown = [os.path.join(directory, name) for name in part["unknown"]]
            total += sum(tree_allocated(path) for path in unknown)
            # a directory seen before its record was written (its own stamp moved, not states/'s) counts once it has one
            written = sum(1 for path in unknown if os.path.isfile(os.path.join(path, STATE_RECORD)))
            states = part["count"] - len(unknown) + written
        else:
            total += sum(_allocated(os.path.join(directory, name)) for name in part["unknown"])
    return Usage(disk_bytes=total + _top_level_bytes(top), states=states)


def drop(root: Path) -> None:
    """Forget every cached figure of the project in ``root`` (the next reading measures all its files)."""
    for name in (USAGE_FILE, ENTRIES_FILE):
        (Path(root) / name).unlink(missing_ok=True)


def forget_layers(root: Path, names: list[str]) -> None:
    """Measure these layers again at the next reading: they were rewritten in place (a rebase copies data in)."""
    cache_path = Path(root) / ENTRIES_FILE
    (Path(root) / USAGE_FILE).unlink(missing_ok=True)  # the sums include them: the next reading redoes them
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
                        total += tree_allocated(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total
