"""Where vmlog keeps its files: platformdirs' user dirs, or everything under ``$VMLOG_HOME``.

One variable moves everything, so tests and a second user on the same machine each get their own
world. A home also has a short random id, used in VM names so two homes sharing one libvirt daemon
never collide.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP = "vmlog"


@dataclass(frozen=True)
class VmlogHome:
    config: Path  # settings, catalogs the user added, SMTP settings
    data: Path  # image store, projects (layers, states), logbook
    cache: Path  # partial downloads, converted images, build caches
    runtime: Path  # locks, sockets, per-VM logs

    @property
    def images(self) -> Path:
        return self.data / "images"

    @property
    def projects(self) -> Path:
        return self.data / "projects"

    @property
    def logbook(self) -> Path:
        return self.data / "logbook.sqlite"

    @property
    def downloads(self) -> Path:
        return self.cache / "downloads"

    @property
    def locks(self) -> Path:
        return self.runtime / "locks"

    def vm_runtime_dir(self, owner: str) -> Path:
        """Runtime files of a VM (console log, agent socket), at a path short enough for Unix sockets (108 bytes).

        Below ``runtime`` when that is short enough, else a per-home directory in the system's temp
        dir, named by a digest of the runtime path so every process of this home finds the same one.
        """
        preferred = self.runtime / "vms" / owner
        if len(str(preferred)) <= 72:
            return preferred
        digest = hashlib.sha256(str(self.runtime).encode()).hexdigest()[:12]
        private = Path(tempfile.gettempdir()) / f"vmlog-{os.getuid()}-{digest}"
        private.mkdir(mode=0o700, exist_ok=True)  # console logs are the user's business only
        return private / owner[-40:]

    def ensure(self) -> VmlogHome:
        for path in (self.config, self.data, self.cache, self.runtime, self.images, self.projects, self.locks):
            path.mkdir(parents=True, exist_ok=True)
        self.runtime.chmod(0o700)
        return self

    @property
    def home_id(self) -> str:
        """A short id unique to this home (created once), used to keep VM names apart."""
        id_file = self.data / "home-id"
        try:
            value = id_file.read_text().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        self.data.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(4)
        tmp = id_file.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        try:
            os.link(tmp, id_file)  # first writer wins, even against a concurrent process
        except FileExistsError:
            value = id_file.read_text().strip()
        finally:
            tmp.unlink(missing_ok=True)
        return value


def home_under(base: Path) -> VmlogHome:
    """The home ``VMLOG_HOME=base`` gives: everything in four folders under one directory."""
    return VmlogHome(config=base / "config", data=base / "data", cache=base / "cache", runtime=base / "run")


def home() -> VmlogHome:
    """The current home: ``$VMLOG_HOME`` if set, else the platform's user directories."""
    root = os.environ.get("VMLOG_HOME")
    if root:
        return home_under(Path(root).expanduser().resolve())
    xdg_runtime = os.environ.get("XDG_RUNTIME_DIR")
    runtime = (
        Path(xdg_runtime) / APP
        if xdg_runtime and Path(xdg_runtime).is_dir()
        else Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"  # no session manager: private dir in /tmp
    )
    return VmlogHome(
        config=Path(platformdirs.user_config_dir(APP)),
        data=Path(platformdirs.user_data_dir(APP)),
        cache=Path(platformdirs.user_cache_dir(APP)),
        runtime=runtime,
    )
