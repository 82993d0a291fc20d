"""What setup keeps next to a project in ``<project>/setup/``: how its guest reports ready, its context, its seed.

``setup.json`` records the appliance, how the guest shows it is ready and the SSH forward;
``context.json`` the context the seed was rendered from; ``seed.iso`` the seed itself. Releases
mounted in a CernVM project re-render the seed from ``context.json``, so the three stay together.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from vmlog.appliances.catalog import store_name
from vmlog.context.model import Context
from vmlog.context.seed import SEED_KINDS, write_seed
from vmlog.errors import VmlogError
from vmlog.fsutil import atomic_write_text
from vmlog.testappliance.build import APPLIANCE_NAME as TEST_APPLIANCE

SETUP_DIR = "setup"
SETUP_FILE = "setup.json"
CONTEXT_FILE = "context.json"
SEED_FILE = "seed.iso"
KNOWN_HOSTS_FILE = "known_hosts"
SSH_KEY_FILES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
READY_MARKER = "VMLOG-READY"


def setup_dir(project_root: Path) -> Path:
    return Path(project_root) / SETUP_DIR


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, None if there is none; a corrupt file is an error with its fix."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise VmlogError(f"{path} is corrupt: {exc}", fix=f"delete {path}; `vml setup` writes it again") from exc


def read_setup_meta(project_root: Path) -> dict[str, Any] | None:
    """``setup.json`` of a project, None for a project not made by setup."""
    return read_json(setup_dir(project_root) / SETUP_FILE)


def read_stored_context(project_root: Path) -> dict[str, Any] | None:
    """``context.json`` of a project as a dict, None if setup wrote none."""
    return read_json(setup_dir(project_root) / CONTEXT_FILE)


def is_test_appliance(base_name: object) -> bool:
    """True if a project's base image is the test appliance, whose guest runs the vmlog agent."""
    return base_name == store_name(TEST_APPLIANCE)


def meta_without_setup(base: dict[str, Any]) -> dict[str, Any]:
    """What setup can tell of a project made by ``vml project new``: only the test appliance's agent is known."""
    agent = is_test_appliance(base.get("name"))
    return {
        "appliance": base.get("name"),
        "version": base.get("version"),
        "context": "none",
        "agent": agent,
        "ready_marker": READY_MARKER if agent else None,
        "ssh": False,
        "ssh_port": None,
    }


def record_guest_agent(project_root: Path, base: dict[str, Any], kind: str) -> None:
    """Write into ``setup.json`` (made up for a project without one) which agent the guest was found to run."""
    meta = read_setup_meta(project_root) or meta_without_setup(base)
    setup_dir(project_root).mkdir(parents=True, exist_ok=True)
    atomic_write_text(setup_dir(project_root) / SETUP_FILE, json.dumps({**meta, "guest_agent": kind}, indent=2) + "\n")


def context_to_dict(context: Context) -> dict[str, Any]:
    """The context as it reads back from ``context.json`` (lists, not tuples), so the two compare equal."""
    return json.loads(json.dumps(dataclasses.asdict(context)))


def hostname_for(project: str) -> str:
    """A valid hostname made from a project name (project names may hold '.' and '_')."""
    cleaned = re.sub(r"[^A-Za-z0-9-]+", "-", project).strip("-")[:63].strip("-")
    return cleaned or "vmlog"


def default_context(project: str) -> Context:
    """The context of a project set up without ``--context``: its name as hostname, the user's SSH key."""
    key = None
    for name in SSH_KEY_FILES:
        try:
            text = (Path.home() / ".ssh" / name).read_text().strip()
        except OSError:
            continue
        if text and "\n" not in text:
            key = text
            break
    return Context(hostname=hostname_for(project), ssh_public_key=key)


def private_key_for(public_key: object) -> Path | None:
    """The user's private key file (``~/.ssh/id_*``) whose ``.pub`` is ``public_key``, if there is one."""
    if not isinstance(public_key, str) or not public_key.strip():
        return None
    wanted = public_key.split()[:2]
    for name in SSH_KEY_FILES:
        pub = Path.home() / ".ssh" / name
        try:
            if pub.read_text().split()[:2] == wanted and pub.with_suffix("").is_file():
                return pub.with_suffix("")
        except OSError:
            continue
    return None


def stored_or_default_context(project_root: Path, project: str) -> Context:
    """The context the project's seed was rendered from, or the default one if setup kept none."""
    stored = read_stored_context(project_root)
    return Context.from_dict(stored) if stored else default_context(project)


def write_context_files(project_root: Path, meta: dict[str, Any], context: Context) -> Path | None:
    """Write setup.json, context.json and the seed ISO the project's spec points at (the seed's path)."""
    directory = setup_dir(project_root)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / CONTEXT_FILE, json.dumps(context_to_dict(context), indent=2) + "\n")
    seed = None
    if meta["context"] in SEED_KINDS:
        seed = write_seed(meta["context"], context, directory / SEED_FILE)
    atomic_write_text(directory / SETUP_FILE, json.dumps(meta, indent=2) + "\n")
    return seed


def seed_is_missing(kind: str, seed_path: Path) -> bool:
    """True if the project's VM expects a seed of ``kind`` at ``seed_path`` and an interrupted run lost it."""
    return kind in SEED_KINDS and not seed_path.is_file()


def rewrite_seed(project_root: Path, project: str, kind: str, seed_path: Path) -> Path:
    """Render the seed again from the stored context (or the default one if setup kept none)."""
    seed_path.parent.mkdir(parents=True, exist_ok=True)
    return write_seed(kind, stored_or_default_context(project_root, project), seed_path)
