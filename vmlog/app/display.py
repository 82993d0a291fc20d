"""A running VM's screen: where its display server listens, and the standard viewer that shows it.

The window embeds its own viewer on the same address; ``vml display`` hands it to ``remote-viewer``
(the virt-viewer package) when that is installed, else prints it for any VNC viewer.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from hypervisors.base import Capability, DisplayEndpoint, VMState
from hypervisors.errors import Unsupported
from vmlog.app.projects import load
from vmlog.app.results import MappingResult
from vmlog.projects.backends import open_backend, vm_state
from vmlog.workspace import Workspace

__all__ = ["Display", "DisplayEndpoint", "Unsupported", "display", "viewer_command"]

VIEWERS = ("remote-viewer",)  # takes a vnc:// or spice:// address (virt-viewer itself needs a libvirt URI)
VIEWER_PACKAGE = "virt-viewer"


@dataclass(frozen=True)
class Display(MappingResult):
    """The project's VM screen: its address, and the viewer command that opens it here (None if none installed)."""

    project: str
    endpoint: DisplayEndpoint
    viewer: list[str] | None

    @property
    def uri(self) -> str:
        return self.endpoint.uri

    def to_dict(self) -> dict[str, Any]:
        end = self.endpoint
        return {
            "project": self.project, "protocol": end.protocol, "uri": end.uri, "host": end.host, "port": end.port,
            "socket": str(end.socket) if end.socket else None, "viewer": self.viewer,
        }


def viewer_command(endpoint: DisplayEndpoint, title: str) -> list[str] | None:
    """The installed standard viewer's command line for ``endpoint`` (None: install virt-viewer)."""
    for name in VIEWERS:
        path = shutil.which(name)
        if path:
            return [path, f"--title={title}", endpoint.uri]
    return None


def display(name: str | None = None, *, ctx: Workspace | None = None) -> Display:
    """Where the project's running VM shows its screen (``Unsupported`` if the VM is off or has none)."""
    _files, project = load(name, ctx)
    with open_backend(project) as backend:
        if not backend.can(Capability.DISPLAY):
            raise Unsupported(f"the {project.backend} backend shows no screen to viewers",
                              fix="use the hypervisor's own window", backend=project.backend)
        if vm_state(backend, project.vm_name) not in (VMState.RUNNING, VMState.PAUSED):
            raise Unsupported(f"the VM of {project.name!r} is not running, so it has no screen to show",
                              fix=f"`vml up {project.name}` first", backend=project.backend)
        endpoint = backend.display_endpoint(project.vm_name)
    return Display(project.name, endpoint, viewer_command(endpoint, f"{project.name} (vmlog)"))
