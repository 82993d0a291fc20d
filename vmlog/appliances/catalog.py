"""The user's appliance catalogs: the ones added (recorded in ``<config>/catalogs.json``) and the built-ins.

The built-in CernVM and vmlog-test appliances are always there; a catalog the user added may
serve an appliance of the same name instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmlog.appliances.builtin import builtin_appliances, vagrant_server_appliance
from vmlog.appliances.catalog_format import CATALOG_FORMAT, SAFE_NAME, load_document, parse_catalog
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

    def __init__(self, config_dir: Path, *, insecure: bool = False) -> None:
        self.config_dir = Path(config_dir)
        self.insecure = insecure
        self.problems: list[str] = []  # catalogs that could not be read, for the CLI to warn about

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
        appliances = parse_catalog(load_document(location, insecure=self.insecure), source=location)
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
        kept = [e for e in data.get("catalogs", []) if e["name"] != name]
        if len(kept) == len(data.get("catalogs", [])):
            raise NotFound(f"no catalog named {name!r}", fix="see `vml catalog list`")
        data["catalogs"] = kept
        self._write(data)

    def appliances(self) -> list[Appliance]:
        """Built-ins first, then every readable catalog; unreadable ones go to ``problems``."""
        found: dict[str, Appliance] = {a.name: a for a in builtin_appliances(self.config_dir, insecure=self.insecure)}
        self.problems = []
        for entry in self.entries():
            try:
                doc = load_document(entry.location, insecure=self.insecure)
                for appliance in parse_catalog(doc, source=entry.name):
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
