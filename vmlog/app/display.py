"""A running VM's screen: where its display servers listen, and the standard viewer that shows it.

The window embeds its own viewer on the VNC address; ``vml display`` hands the address to ``remote-viewer``
(the virt-viewer package) when that is installed, else prints it for any viewer. Where the host's QEMU has
SPICE the VM serves its screen by SPICE too, and the user may choose it for the viewer (``vml display
--protocol spice``; ``--prefer`` keeps the choice, in ``<config>/display.json``, for the window's
"Open in viewer" too).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import Any

from hypervisors.base import Capability, DisplayEndpoint, VMState
from hypervisors.errors import Unsupported
from vmlog.app.projects import load
from vmlog.app.results import MappingResult
from vmlog.errors import InvalidInput
from vmlog.fsutil import atomic_write_json
from vmlog.projects.backends import open_backend, vm_state
from vmlog.workspace import Workspace

__all__ = ["PROTOCOLS", "Display", "DisplayEndpoint", "Unsupported", "display", "preferred_protocol",
           "set_preferred_protocol", "viewer_command"]

VIEWERS = ("remote-viewer",)  # takes a vnc:// or spice:// address (virt-viewer itself needs a libvirt URI)
VIEWER_PACKAGE = "virt-viewer"
PROTOCOLS = ("vnc", "spice")
SETTINGS_FILE = "display.json"


@dataclass(frozen=True)
class Display(MappingResult):
    """The project's VM screen: the address chosen, the viewer command that opens it here (None if none is
    installed), and every server the VM has (VNC, and SPICE where the host's QEMU has it)."""

    project: str
    endpoint: DisplayEndpoint
    viewer: list[str] | None
    offered: tuple[DisplayEndpoint, ...] = ()

    @property
    def uri(self) -> str:
        return self.endpoint.uri

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(end.protocol for end in self.offered) or (self.endpoint.protocol,)

    def endpoint_for(self, protocol: str) -> DisplayEndpoint | None:
        return next((end for end in self.offered or (self.endpoint,) if end.protocol == protocol), None)

    def viewer_for(self, protocol: str) -> list[str] | None:
        """The viewer's command for the VM's ``protocol`` server (None: no such server, or no viewer)."""
        end = self.endpoint_for(protocol)
        if end is None or end == self.endpoint:
            return None if end is None else self.viewer
        return viewer_command(end, f"{self.project} (vmlog)")

    def to_dict(self) -> dict[str, Any]:
        end = self.endpoint
        return {
            "project": self.project, "protocol": end.protocol, "uri": end.uri, "host": end.host, "port": end.port,
            "socket": str(end.socket) if end.socket else None, "viewer": self.viewer,
            "offered": {other.protocol: other.uri for other in self.offered or (end,)},
        }


def viewer_command(endpoint: DisplayEndpoint, title: str) -> list[str] | None:
    """The installed standard viewer's command line for ``endpoint`` (None: install virt-viewer)."""
    for name in VIEWERS:
        path = shutil.which(name)
        if path:
            return [path, f"--title={title}", endpoint.uri]
    return None


def preferred_protocol(*, ctx: Workspace | None = None) -> str:
    """The protocol the user chose for the viewer (``vml display --prefer``); VNC until one is chosen."""
    ctx = ctx or Workspace.default()
    try:
        chosen = json.loads((ctx.home.config / SETTINGS_FILE).read_text()).get("viewer_protocol")
    except (OSError, ValueError, AttributeError):
        return "vnc"
    return chosen if chosen in PROTOCOLS else "vnc"


def set_preferred_protocol(protocol: str, *, ctx: Workspace | None = None) -> str:
    """Keep ``protocol`` as the one the viewer is handed from now on (by ``vml display`` and the window)."""
    ctx = ctx or Workspace.default()
    if protocol not in PROTOCOLS:
        raise InvalidInput(f"unknown display protocol {protocol!r}", fix="use --protocol vnc or --protocol spice")
    ctx.home.config.mkdir(parents=True, exist_ok=True)
    atomic_write_json(ctx.home.config / SETTINGS_FILE, {"viewer_protocol": protocol})
    return protocol


def display(name: str | None = None, *, protocol: str | None = None, ctx: Workspace | None = None) -> Display:
    """Where the project's running VM shows its screen by ``protocol`` (default: the preferred one, else the
    first server the VM has). ``Unsupported`` if the VM is off or has no screen, or no server of an asked
    ``protocol``."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise InvalidInput(f"unknown display protocol {protocol!r}", fix="use --protocol vnc or --protocol spice")
    _files, project = load(name, ctx)
    with open_backend(project) as backend:
        if not backend.can(Capability.DISPLAY):
            raise Unsupported(f"the {project.backend} backend shows no screen to viewers",
                              fix="use the hypervisor's own window", backend=project.backend)
        if vm_state(backend, project.vm_name) not in (VMState.RUNNING, VMState.PAUSED):
            raise Unsupported(f"the VM of {project.name!r} is not running, so it has no screen to show",
                              fix=f"`vml up {project.name}` first", backend=project.backend)
        offered = tuple(backend.display_endpoints(project.vm_name))
    wanted = protocol or preferred_protocol(ctx=ctx)
    endpoint = next((end for end in offered if end.protocol == wanted), None)
    if endpoint is None and protocol is not None:
        has = ", ".join(end.protocol.upper() for end in offered)
        raise Unsupported(
            f"the VM of {project.name!r} shows no {protocol.upper()} screen (it has {has}): the host's QEMU has"
            f" no {protocol.upper()}, or the VM was started before vmlog offered it",
            fix=f"`vml display {project.name} --protocol {offered[0].protocol}`", backend=project.backend)
    endpoint = endpoint or offered[0]
    return Display(project.name, endpoint, viewer_command(endpoint, f"{project.name} (vmlog)"), offered)
