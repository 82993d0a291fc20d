"""The release sources the user added (``vml release source add``), kept in the config directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vmlog.errors import AlreadyExists, InvalidInput, NotFound
from vmlog.fsutil import atomic_write_json, read_json
from vmlog.paths import VmlogHome, home
from vmlog.releases.cvmfs_source import CvmfsSource
from vmlog.releases.model import ReleaseSource
from vmlog.releases.tree_source import HttpTreeSource


def sources_file(where: VmlogHome | None = None) -> Path:
    return (where or home()).config / "releases" / "sources.json"


def source_from_config(config: dict[str, Any]) -> ReleaseSource:
    """Rebuild a source from :meth:`ReleaseSource.to_config` output."""
    kind = config.get("kind")
    common = {"name": config.get("name"), "pattern": config.get("pattern", "{release}"), "proxy": config.get("proxy")}
    if kind == "cvmfs":
        return CvmfsSource(config["url"], config["master_key_pem"], **common)
    if kind == "http-tree":
        return HttpTreeSource(config["url"], **common)
    raise InvalidInput(f"unknown release source kind {kind!r}", fix="remove the source and add it again")


def make_source(
    url: str,
    *,
    kind: str = "auto",
    key_pem: str | None = None,
    name: str | None = None,
    pattern: str = "{release}",
    proxy: str | None = None,
) -> ReleaseSource:
    """A new source from command-line style arguments (``auto`` picks CernVM-FS for ``/cvmfs/`` URLs)."""
    if kind == "auto":
        kind = "cvmfs" if "/cvmfs/" in url or key_pem else "http-tree"
    if kind == "cvmfs":
        if not key_pem:
            raise InvalidInput(
                "a CernVM-FS source needs the repository's master public key to verify its signatures",
                fix="pass --key /etc/cvmfs/keys/<domain>/<domain>.pub (the .pub file of the repository)",
            )
        return CvmfsSource(url, key_pem, name=name, pattern=pattern, proxy=proxy)
    if kind == "http-tree":
        return HttpTreeSource(url, name=name, pattern=pattern, proxy=proxy)
    raise InvalidInput(f"unknown source kind {kind!r}", fix="use --kind cvmfs or --kind http-tree")


def load_sources(where: VmlogHome | None = None) -> list[ReleaseSource]:
    path = sources_file(where)
    if not path.exists():
        return []
    return [source_from_config(c) for c in read_json(path)]


def save_sources(sources: list[ReleaseSource], where: VmlogHome | None = None) -> None:
    path = sources_file(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, [s.to_config() for s in sources])


def add_source(source: ReleaseSource, where: VmlogHome | None = None) -> None:
    sources = load_sources(where)
    if any(s.name == source.name for s in sources):
        raise AlreadyExists(
            f"a release source called {source.name!r} exists", fix="pick another one with --name, or remove it first"
        )
    save_sources([*sources, source], where)


def remove_source(name: str, where: VmlogHome | None = None) -> None:
    sources = load_sources(where)
    kept = [s for s in sources if s.name != name]
    if len(kept) == len(sources):
        raise NotFound(f"no release source called {name!r}", fix="see them with: vml release source list")
    save_sources(kept, where)


def get_source(name: str | None, where: VmlogHome | None = None) -> ReleaseSource:
    """The source called ``name``, or the only one if ``name`` is None."""
    sources = load_sources(where)
    if name is None:
        if len(sources) == 1:
            return sources[0]
        raise InvalidInput(
            "several release sources are configured" if sources else "no release source is configured",
            fix="vml release source add URL" if not sources else "choose one with --source NAME",
        )
    for source in sources:
        if source.name == name:
            return source
    raise NotFound(f"no release source called {name!r}", fix="see them with: vml release source list")
