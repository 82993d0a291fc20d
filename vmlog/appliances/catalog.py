"""The user's appliance catalogs: the ones added (recorded in ``<config>/catalogs.json``) and the built-ins.

The built-in CernVM and vmlog-test appliances are always there; a catalog the user added may
serve an appliance of the same name instead. A remote catalog's last good copy is kept
(:mod:`vmlog.appliances.catalog_cache`): while its server is down its appliances stay listed, and
``notes`` says the copy's date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog.appliances.builtin import builtin_appliances, vagrant_server_appliance
from vmlog.appliances.catalog_cache import CatalogCache, parse_json
from vmlog.appliances.catalog_format import CATALOG_FORMAT, MAX_CATALOG_BYTES, SAFE_NAME, load_document, parse_catalog
from vmlog.appliances.model import Appliance, ApplianceVersion, store_name
from vmlog.appliances.settings import CATALOG_FILE
from vmlog.errors import AlreadyExists, InvalidInput, NotFound, VmlogError
from vmlog.fsutil import atomic_write_text

# What callers import from here: the records are defined in model, the parsing in catalog_format.
__all__ = [
    "CATALOG_FORMAT",
    "Appliance",
    "ApplianceVersion",
    "CatalogEntry",
    "Catalogs",
    "parse_catalog",
    "store_name",
]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    location: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "location": self.location}


class Catalogs:
    """The catalogs a user added (recorded in the config dir) plus the built-in appliances."""

    def __init__(self, config_dir: Path, *, insecure: bool = False, cache_dir: Path | None = None) -> None:
        self.config_dir = Path(config_dir)
        self.insecure = insecure
        self.cache = CatalogCache(cache_dir) if cache_dir is not None else None
        self.problems: list[str] = []  # catalogs that could not be read (or only a kept copy), for the CLI to warn
        self.notes: list[str] = []  # the catalogs read from their kept copy, and its date (also in ``problems``)

    @property
    def file(self) -> Path:
        return self.config_dir / CATALOG_FILE

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.file.read_text())
        except FileNotFoundError:
            return {"catalogs": []}
        except json.JSONDecodeError as exc:
            raise VmlogError(f"{self.file} is corrupt: {exc}", fix=f"fix or delete {self.file}") from exc

    def _write(self, data: dict[str, Any]) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.file, json.dumps(data, indent=2) + "\n")

    def entries(self) -> list[CatalogEntry]:
        return [CatalogEntry(e["name"], e["location"]) for e in self._read().get("catalogs", [])]

    def add(self, location: str, *, name: str | None = None) -> CatalogEntry:
        """Read the catalog once to check it, then record it under ``name``."""
        if "://" not in location:
            location = str(Path(location).expanduser().resolve())
        appliances = self._read_catalog(location, location, keep_going=False)
        if name is None:
            base = appliances[0].name if len(appliances) == 1 else Path(location.rstrip("/")).stem
            name = store_name(base)
        if not SAFE_NAME.match(name):
            raise InvalidInput(f"invalid catalog name {name!r}", fix="use letters, digits, '.', '_', '-'")
        data = self._read()
        if any(e["name"] == name for e in data.get("catalogs", [])):
            raise AlreadyExists(f"a catalog named {name!r} exists", fix=f"`vml catalog rm {name}` or pass --name")
        data.setdefault("catalogs", []).append({"name": name, "location": location})
        self._write(data)
        return CatalogEntry(name, location)

    def remove(self, name: str) -> None:
        data = self._read()
        gone = [e for e in data.get("catalogs", []) if e["name"] == name]
        if not gone:
            raise NotFound(f"no catalog named {name!r}", fix="see `vml catalog list`")
        data["catalogs"] = [e for e in data.get("catalogs", []) if e["name"] != name]
        self._write(data)
        if self.cache is not None:
            self.cache.forget(gone[0]["location"])

    def _read_catalog(self, location: str, source: str, *, keep_going: bool = True) -> list[Appliance]:
        """A catalog's appliances: a file as it is, a URL through the kept copy when there is a cache."""
        if self.cache is None or "://" not in location:
            return parse_catalog(load_document(location, insecure=self.insecure), source=source)
        read_json = parse_json(location, MAX_CATALOG_BYTES)
        copy = self.cache.load(location, parse=lambda data: parse_catalog(read_json(data), source=source),
                               insecure=self.insecure, limit=MAX_CATALOG_BYTES)  # fmt: skip
        if copy.cached:
            note = f"catalog {source}: {copy.reason}; using the cached copy from {copy.fetched_label}"
            self.notes.append(note)
            if keep_going:
                self.problems.append(note)
        return copy.document

    def appliances(self) -> list[Appliance]:
        """Built-ins first, then every readable catalog (a remote one's kept copy while its server is down);
        unreadable ones go to ``problems``."""
        found: dict[str, Appliance] = {a.name: a for a in builtin_appliances(self.config_dir, insecure=self.insecure)}
        self.problems = []
        self.notes = []
        for entry in self.entries():
            try:
                for appliance in self._read_catalog(entry.location, entry.name):
                    found[appliance.name] = appliance  # a user's catalog may serve vmlog-test
            except VmlogError as exc:
                self.problems.append(f"catalog {entry.name}: {exc.message}")
            except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong type
                self.problems.append(f"catalog {entry.name}: malformed ({type(exc).__name__})")
        return sorted(found.values(), key=lambda a: a.name)

    def get(self, name: str) -> Appliance:
        """The appliance ``name`` names: as its catalog names it (``hashicorp/bionic64``), or by its store
        name (``hashicorp-bionic64``). A Vagrant name no catalog lists is asked of the Vagrant server, as
        ``vagrant box add`` does (``$VAGRANT_SERVER_URL`` or ``settings.vagrant_server_url``)."""
        appliances = self.appliances()
        for appliance in appliances:
            if appliance.name == name:
                return appliance
        for appliance in appliances:
            if appliance.store_name == name:
                return appliance
        found = vagrant_server_appliance(self.config_dir, name, insecure=self.insecure)
        if found is not None:
            return found
        raise NotFound(f"no appliance named {name!r} in any catalog", fix="see `vml appliance list`")

    def search(self, text: str) -> list[Appliance]:
        needle = text.lower()
        return [
            a
            for a in self.appliances()
            if needle in a.name.lower() or needle in a.title.lower() or needle in a.description.lower()
        ]
