"""What a project's VM is told at first boot: user, SSH key, hostname, CernVM-FS settings, extra files.

A ``Context`` is neutral: :mod:`vmlog.context.userdata` renders it as cloud-init NoCloud data or
as CernVM's contextualisation. It loads from a TOML or JSON file so users can keep one per project.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmlog.errors import InvalidInput, NotFound

_HOSTNAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MODE = re.compile(r"^0?[0-7]{3,4}$")


@dataclass(frozen=True)
class ExtraFile:
    """A file written into the guest at first boot (cloud-init ``write_files``)."""

    path: str
    content: str
    permissions: str = "0644"

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise InvalidInput(f"extra file path {self.path!r} must be absolute", fix="start it with /")
        if not _MODE.match(self.permissions):
            raise InvalidInput(f"extra file {self.path}: permissions {self.permissions!r} is not an octal mode")


@dataclass(frozen=True)
class Context:
    user: str = "vmlog"
    ssh_public_key: str | None = None
    hostname: str = "vmlog"
    cvmfs_repositories: tuple[str, ...] = ()
    cvmfs_http_proxy: str | None = None
    extra_user_data: str | dict[str, Any] | None = None  # cloud-config mapping, or a raw user-data part
    extra_files: tuple[ExtraFile, ...] = field(default=())
    instance_id: str | None = None  # changes make cloud-init run again; default derived from hostname

    def __post_init__(self) -> None:
        if not _USER.match(self.user):
            raise InvalidInput(f"invalid user name {self.user!r}", fix="use lower-case letters, digits, '_' or '-'")
        if not _HOSTNAME.match(self.hostname):
            raise InvalidInput(f"invalid hostname {self.hostname!r}", fix="use letters, digits and '-' (max 63)")
        for repo in self.cvmfs_repositories:
            if not _REPO.match(repo):
                raise InvalidInput(f"invalid CernVM-FS repository name {repo!r}")
        if self.ssh_public_key is not None:
            key = self.ssh_public_key.strip()
            if "\n" in key or not key.startswith(("ssh-", "ecdsa-", "sk-")):
                raise InvalidInput(
                    "ssh_public_key is not one OpenSSH public key line", fix="use the content of ~/.ssh/id_*.pub"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> Context:
        """Build from a mapping; ``ssh_public_key_file`` and file ``source`` paths are read relative to ``base_dir``."""
        data = dict(data)
        known = {
            "user", "ssh_public_key", "ssh_public_key_file", "hostname", "cvmfs_repositories",
            "cvmfs_http_proxy", "extra_user_data", "extra_files", "instance_id",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(
                f"unknown context settings: {', '.join(unknown)}", fix=f"use only: {', '.join(sorted(known))}"
            )
        base = Path(base_dir) if base_dir else Path.cwd()
        key_file = data.pop("ssh_public_key_file", None)
        if key_file:
            path = (base / Path(key_file).expanduser()).resolve()
            try:
                data["ssh_public_key"] = path.read_text().strip()
            except FileNotFoundError:
                raise NotFound(f"SSH public key file {path} does not exist", fix="ssh-keygen -t ed25519") from None
        files = []
        for item in data.pop("extra_files", []) or []:
            item = dict(item)
            if "source" in item:
                item["content"] = (base / item.pop("source")).read_text()
            files.append(ExtraFile(**item))
        repos = data.pop("cvmfs_repositories", ()) or ()
        if isinstance(repos, str):
            repos = [r.strip() for r in repos.split(",") if r.strip()]
        return cls(**data, cvmfs_repositories=tuple(repos), extra_files=tuple(files))

    @classmethod
    def load(cls, path: Path) -> Context:
        """Read a ``.toml`` or ``.json`` context file."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise NotFound(f"context file {path} does not exist") from None
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"context file {path} is malformed: {exc}") from exc
        return cls.from_dict(data, base_dir=path.parent)

    @property
    def effective_instance_id(self) -> str:
        return self.instance_id or f"vmlog-{self.hostname}"
