"""Catalog settings: a value from the environment, else from ``settings`` in the user's catalogs.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

CATALOG_FILE = "catalogs.json"


def setting(config_dir: Path, key: str, env: str) -> str | None:
    """A catalog setting: the environment wins, then ``settings`` in catalogs.json."""
    if os.environ.get(env):
        return os.environ[env]
    try:
        return json.loads((Path(config_dir) / CATALOG_FILE).read_text()).get("settings", {}).get(key)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
