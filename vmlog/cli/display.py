"""``vml display``: open the screen of a project's running VM in the standard viewer, or print its address."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from vmlog.app import display as app_display
from vmlog.cli.output import info, out, print_json


def display(
    project: Annotated[str | None, typer.Argument(help="The project (default: the current one).")] = None,
    protocol: Annotated[
        str | None,
        typer.Option("--protocol", help="vnc or spice (where the host's QEMU has SPICE); default: the preferred one."),
    ] = None,
    prefer: Annotated[
        bool, typer.Option("--prefer", help="Keep --protocol as the default, also for the window's Open in viewer.")
    ] = False,
    print_only: Annotated[bool, typer.Option("--print", help="Print the address; open no viewer.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the VM's screen: opens remote-viewer when installed, else prints the address for any viewer."""
    if prefer:
        if protocol is None:
            raise typer.BadParameter("--prefer keeps the --protocol given: pass --protocol vnc or --protocol spice")
        info(f"the viewer is handed the {app_display.set_preferred_protocol(protocol).upper()} screen from now on")
    shown = app_display.display(project, protocol=protocol)
    if json_output:
        print_json(shown.to_dict())
        return
    if print_only or shown.viewer is None:
        out.print(shown.uri)
        if shown.viewer is None and not print_only:
            info(f"open it with any {shown.endpoint.protocol.upper()} viewer; `apt-get install "
                 f"{app_display.VIEWER_PACKAGE}` gives remote-viewer")
        return
    subprocess.Popen(shown.viewer, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)  # the viewer outlives this command, like a window opened from a menu
    info(f"opened {shown.uri} in {shown.viewer[0].rsplit('/', 1)[-1]}")
