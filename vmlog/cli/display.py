"""``vml display``: open the screen of a project's running VM in the standard viewer, or print its address."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from vmlog.app import display as app_display
from vmlog.cli.output import info, out, print_json


def display(
    project: Annotated[str | None, typer.Argument(help="The project (default: the current one).")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Print the address; open no viewer.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the VM's screen: opens remote-viewer when installed, else prints the VNC address for any viewer."""
    shown = app_display.display(project)
    if json_output:
        print_json(shown.to_dict())
        return
    if print_only or shown.viewer is None:
        out.print(shown.uri)
        if shown.viewer is None and not print_only:
            info(f"open it with any VNC viewer; `apt-get install {app_display.VIEWER_PACKAGE}` gives remote-viewer")
        return
    subprocess.Popen(shown.viewer, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)  # the viewer outlives this command, like a window opened from a menu
    info(f"opened {shown.uri} in {shown.viewer[0].rsplit('/', 1)[-1]}")
