"""Entry point of ``vml``: builds the typer app and maps domain errors to exit codes at one place."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from hypervisors.errors import HypervisorError
from vmlog import __version__
from vmlog.cli import appliance as appliance_cli
from vmlog.cli import bundle as bundle_cli
from vmlog.cli import catalog as catalog_cli
from vmlog.cli import demo as demo_cli
from vmlog.cli import doctor as doctor_cli
from vmlog.cli import lifecycle as lifecycle_cli
from vmlog.cli import log as log_cli
from vmlog.cli import project as project_cli
from vmlog.cli import release as release_cli
from vmlog.cli import setup as setup_cli
from vmlog.cli import state as state_cli
from vmlog.cli.output import err
from vmlog.errors import VmlogError

app = typer.Typer(
    name="vml",
    help="vmlog, the Virtual Machine Logbook: projects, state trees and shareable states for VMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """vmlog keeps one VM per project, a tree of saved states per VM, and a logbook of everything."""


# Getting started
app.command("setup")(setup_cli.setup)
app.command("demo")(demo_cli.demo)
app.command("doctor")(doctor_cli.doctor)
# Projects and their VMs
app.add_typer(project_cli.app, name="project")
for _command in (
    lifecycle_cli.up, lifecycle_cli.down, lifecycle_cli.status, lifecycle_cli.switch, lifecycle_cli.console
):  # fmt: skip
    app.command(_command.__name__)(_command)
app.command("ssh")(setup_cli.ssh)
# States, the logbook, and sharing states
state_cli.app.command("export")(bundle_cli.export)
state_cli.app.command("import")(bundle_cli.import_)
state_cli.app.command("send")(bundle_cli.send)
state_cli.app.command("inspect")(bundle_cli.inspect)
app.add_typer(state_cli.app, name="state")
app.command("log")(log_cli.log)
app.command("note")(log_cli.note)
# Appliances, releases, settings
app.add_typer(appliance_cli.app, name="appliance")
app.add_typer(catalog_cli.app, name="catalog")
app.add_typer(release_cli.app, name="release")
app.add_typer(bundle_cli.config_app, name="config")


def run() -> None:
    """Console-script entry: run the app, turning domain errors into one-line messages."""
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        result = app(standalone_mode=False)
    except (VmlogError, HypervisorError) as exc:
        if os.environ.get("VMLOG_DEBUG"):
            raise
        err.print(f"[red]error:[/] {exc.message}")
        if exc.fix:
            err.print(f"  [bold]fix:[/] {exc.fix}")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors: typer bundles its own click, so recognise them by their interface.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    run()
