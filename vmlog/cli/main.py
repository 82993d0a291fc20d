"""Entry point of ``vml``: builds the typer app and maps every error to a message and an exit code at one place."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

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
from vmlog.cli.output import err, report_error
from vmlog.errors import ReportableError

INTERNAL_ERROR_EXIT_CODE = 70  # sysexits EX_SOFTWARE: an exception that is not a product error, i.e. a bug
INTERRUPTED_EXIT_CODE = 130  # Ctrl-C, as a shell reports it (128 + SIGINT); also Cancelled's code

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


def _is_usage_error(exc: Exception) -> bool:
    """A click usage error (bad option, missing argument), recognised by its interface: typer bundles its own click."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def run() -> None:
    """Console-script entry: run the app, turning every failure into a short message and an exit code.

    A product error prints its message and fix and exits with its class's code (``docs/errors.md``);
    anything else was not foreseen, so it is reported in one line with :data:`INTERNAL_ERROR_EXIT_CODE`.
    ``VMLOG_DEBUG=1`` lets both through with their traceback.
    """
    debug = bool(os.environ.get("VMLOG_DEBUG"))
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        result = app(standalone_mode=False)
    except ReportableError as exc:
        if debug:
            raise
        report_error(exc.message, exc.fix)
        # the class's code: an instance may carry an attribute of that name for its own ends
        sys.exit(type(exc).exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(INTERRUPTED_EXIT_CODE)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(INTERRUPTED_EXIT_CODE)
    except Exception as exc:
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if debug:
            raise
        summary = " ".join(str(exc).split())[:400] or "(no message)"
        err.print(f"internal error: {type(exc).__name__}: {summary} (run again with VMLOG_DEBUG=1 for the traceback)")
        sys.exit(INTERNAL_ERROR_EXIT_CODE)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    run()
