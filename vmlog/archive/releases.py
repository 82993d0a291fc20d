"""The release files an archived project's states use, at their pinned revisions, taken from the verified cache.

A state records each mounted release pinned to its exact content (a root catalog hash or a
catalogue digest). Mounting that pin again needs only objects of the release cache (catalogs and
file chunks, each verified when it entered it), never the server: that is how a state remounts
offline today. The archive therefore carries exactly those cache objects: every file of every pinned
release is walked through the source's own tree (objects missing from the cache are fetched and
verified on the way, while the server is still there), and the cache objects the walk used (each use
marks an object as just used) are the ones archived. Unarchiving puts them into the new home's cache,
where the pinned mounts find them with no server at all.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from vmlog.errors import VmlogError
from vmlog.paths import VmlogHome
from vmlog.projects.model import State
from vmlog.releases.model import Release, ReleaseTree
from vmlog.releases.object_cache import DEFAULT_LIMIT, ObjectCache
from vmlog.releases.sources import add_source, load_sources, source_from_config

OBJECT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,159}$")
_CLOCK_SLACK_NS = 50_000_000  # file times are coarser than the clock: count objects touched just before


def pinned_releases(states: dict[str, State]) -> list[dict[str, Any]]:
    """Each distinct pinned release (name, release, source) the states recorded, once."""
    seen: dict[str, dict[str, Any]] = {}
    for state in states.values():
        for item in state.release_mounts:
            key = json.dumps([item.get("source"), (item.get("release") or {}).get("pin")], sort_keys=True)
            seen.setdefault(key, {k: item.get(k) for k in ("name", "release", "source")})
    return list(seen.values())


def _walk(tree: ReleaseTree, path: str, budget: list[int]) -> None:
    for entry in tree.listdir(path):
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError("the release has more entries than an archive takes")
        child = f"{path}/{entry.name}"
        if entry.kind == "dir":
            _walk(tree, child, budget)
        elif entry.kind == "file" and not entry.external:
            for chunk in entry.chunks:
                tree.fetch_chunk(chunk)


def release_objects(items: list[dict[str, Any]], cache_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """The cache objects (key -> file) that show every pinned release in ``items``; notes on those left out."""
    notes: list[str] = []
    started = time.time_ns() - _CLOCK_SLACK_NS
    done = 0
    for item in items:
        try:
            release = Release.from_dict(item["release"])
            source = source_from_config(item["source"])
            resolved = source.resolve(release.path, cache_dir, revision=release.revision, pin=release.pin)
            tree = source.open_tree(resolved, cache_dir, DEFAULT_LIMIT)
            try:
                _walk(tree, "", [1_000_000])
            finally:
                tree.close()
            done += 1
        except Exception as exc:  # an unreachable server for an uncached file, a record from an older vmlog
            notes.append(f"release {item.get('name')}: not archived ({exc})")
    objects: dict[str, Path] = {}
    if done:
        for path in sorted((cache_dir / "objects").glob("*/*")):
            if OBJECT_KEY.match(path.name) and path.is_file() and path.stat().st_mtime_ns >= started:
                objects[path.name] = path
    return objects, notes


def install_objects(objects: dict[str, Path], cache_dir: Path) -> None:
    """Put the archive's release objects (already verified against the archive's digests) into a home's cache."""
    cache = ObjectCache(cache_dir)
    for key, path in objects.items():
        if key not in cache:
            cache.put(key, path.read_bytes())


def configure_sources(items: object, where: VmlogHome) -> list[str]:
    """Configure here the sources of the archived pinned releases that this home does not know yet.

    A restored state mounts only releases whose source is configured (the sources list is what the
    user trusts); unarchiving is the user's choice to trust this project, its disks and its sources.
    A source whose URL is already configured is left as it is, whatever key the archive gives.
    """
    notes: list[str] = []
    if not isinstance(items, list):
        return notes
    known = load_sources(where)
    for item in items[:64]:
        try:
            config = item["source"]
            source = source_from_config(config)
        except (KeyError, TypeError, ValueError, VmlogError):
            continue
        url = str(config.get("url", "")).rstrip("/")
        if any(s.kind == source.kind and s.url.rstrip("/") == url for s in known):
            continue
        taken = {s.name for s in known}
        name, n = source.name, 2
        while name in taken:
            name, n = f"{source.name}-{n}", n + 1
        source.name = name
        add_source(source, where)
        known.append(source)
        notes.append(f"added the release source {name} ({url}) the archived states use")
    return notes
