"""Entry point of ``vml``: lists the command groups and maps every error to a message and an exit code at one place.

A command's module is imported only when that command runs (:mod:`vmlog.cli.lazy`), so shell completion
and a command's start pay for nothing else; ``vml --version`` and ``vml --help`` are answered before
typer is even imported (:mod:`vmlog.cli.registry`), and so are the plain forms of ``vml project list``,
``vml state list`` and ``vml state tree`` (:mod:`vmlog.cli.fast`). ``app``, the typer application, is built
on first use.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from vmlog import __version__
from vmlog.cli.errors_out import (
    INTERNAL_ERROR_EXIT_CODE,
    INTERRUPTED_EXIT_CODE,
    NO_SPACE_EXIT_CODE,
    report_failure,
    wants_json,
)
from vmlog.cli.registry import Lazy, quick_help

__all__ = [
    "COMMANDS",
    "INTERNAL_ERROR_EXIT_CODE",
    "INTERRUPTED_EXIT_CODE",
    "NO_SPACE_EXIT_CODE",
    "app",  # noqa: F822 - built on first use by __getattr__
    "build_app",
    "run",
]

# Every command of `vml`: name, where it lives, and its help as `vml --help` lists it (the first paragraph of
# the command's own help; tests/vmlog/cli/test_lazy.py checks they agree). A new command is one line here.
COMMANDS: tuple[Lazy, ...] = (
    # Getting started
    Lazy(
        "setup", "vmlog.cli.setup:setup",
        "From nothing to a running, contextualised VM: backend, download, verify, project, seed, boot.",
    ),
    Lazy(
        "demo", "vmlog.cli.demo:demo",
        "Build the test appliance, serve it through a catalog on 127.0.0.1, `vml setup` it, ask the guest.",
    ),
    Lazy(
        "doctor", "vmlog.cli.doctor:doctor",
        "Check the hypervisor backends, tools and project store, and say how to fix what is wrong.",
    ),
    # Projects and their VMs
    Lazy("up", "vmlog.cli.lifecycle:up", "Start the project's VM, or resume it where it was suspended."),
    Lazy("down", "vmlog.cli.lifecycle:down", "Stop the VM: ACPI shutdown by default."),
    Lazy(
        "status", "vmlog.cli.lifecycle:status",
        "The VM state, the current saved state and whether there is unsaved work.",
    ),
    Lazy(
        "switch", "vmlog.cli.lifecycle:switch",
        "Suspend every running project's VM (with memory) and resume or start PROJECT's.",
    ),
    Lazy(
        "console", "vmlog.cli.lifecycle:console",
        "The guest's serial console: attach to it, or show the tail of its log (--follow keeps reading).",
    ),
    Lazy(
        "display", "vmlog.cli.display:display",
        "Show the VM's screen: opens remote-viewer when installed, else prints the address for any viewer.",
    ),
    Lazy(
        "ssh", "vmlog.cli.setup:ssh",
        "Log in to the project's VM over its forwarded SSH port (ssh -p PORT user@127.0.0.1).",
    ),
    # States, the logbook, and sharing states
    Lazy(
        "log", "vmlog.cli.log:log",
        "The logbook: every action on every project, who did it, when, and how it ended; notes too.",
    ),
    Lazy("note", "vmlog.cli.log:note", "Write a note in the logbook, attached to a state."),
    Lazy("project", "vmlog.cli.project:app", "Projects: one VM on a base appliance, with its tree of saved states.", (
        Lazy(
            "set", "vmlog.cli.vm_settings:set_settings",
            "Show or change the VM's settings. CPUs and memory apply at the next boot; shares live where possible.",
        ),
        Lazy(
            "archive", "vmlog.cli.archive:archive",
            "Freeze a project into one verifiable .vmlarchive: bases, every state's layer once, "
            "records, logbook, OVFs.",
        ),
        Lazy(
            "unarchive", "vmlog.cli.archive:unarchive",
            "Check a .vmlarchive end to end, then rebuild its project here with every state (writes nothing if bad).",
        ),
    )),
    Lazy("state", "vmlog.cli.state:app", "Saved states of a project: a tree you can go back to and branch from.", (
        Lazy(
            "export", "vmlog.cli.bundle:export",
            "Write a state as one .vmlstate file: what changed since the base appliance (or --since).",
        ),
        Lazy(
            "import", "vmlog.cli.bundle:import_",
            "Verify a .vmlstate file completely, fetch its base if needed, and rebuild the state here.",
        ),
        Lazy(
            "send", "vmlog.cli.bundle:send",
            "Export a state and mail it (SMTP settings from `vml config mail`), or hand it to the mail client.",
        ),
        Lazy(
            "inspect", "vmlog.cli.bundle:inspect",
            "Verify a .vmlstate file and show what it holds and who signed it (writes nothing).",
        ),
        Lazy(
            "push", "vmlog.cli.registry_cli:push",
            "Push a state to an OCI registry; only the blobs the repository lacks are sent.",
        ),
        Lazy(
            "pull", "vmlog.cli.registry_cli:pull",
            "Pull a state from an OCI registry, verify it like `vml state import`, and rebuild it here.",
        ),
    )),
    Lazy(
        "check", "vmlog.cli.check:app",
        "Reproduction checks: commands run in the guest and what they must print, checked on saved states.",
    ),
    # Appliances, releases, settings
    Lazy(
        "appliance", "vmlog.cli.appliance:app",
        "Base appliances: find them in catalogs, pull, verify and remove them.",
    ),
    Lazy("catalog", "vmlog.cli.catalog:app", "Appliance catalogs (vmlog JSON catalogs or Vagrant box metadata)."),
    Lazy(
        "release", "vmlog.cli.release:app",
        "List, mount and unmount software releases (CernVM-FS repositories, HTTP release trees).",
    ),
    Lazy(
        "context", "vmlog.cli.context:app",
        "Context templates: named, reusable contextualisations (user, SSH key, CernVM-FS, files) for new VMs.",
    ),
    Lazy("config", "vmlog.cli.bundle:config_app", "Settings of this vmlog home."),
)  # fmt: skip

APP_HELP = "vmlog, the Virtual Machine Logbook: projects, state trees and shareable states for VMs."


def build_app() -> Any:
    """The typer application of `vml` (imports typer; the commands themselves load when they run)."""
    from typing import Annotated

    import typer

    from vmlog.cli.lazy import lazy_group

    built = typer.Typer(
        name="vml",
        help=APP_HELP,
        cls=lazy_group(COMMANDS),
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"vml {__version__}")
            raise typer.Exit()

    def main(version: bool = False) -> None:
        """vmlog keeps one VM per project, a tree of saved states per VM, and a logbook of everything."""

    # given as objects: this module's annotations are strings that typer would look up among its globals
    main.__annotations__ = {
        "version": Annotated[
            bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
        ],
        "return": None,
    }
    built.callback()(main)
    return built


def __getattr__(name: str) -> Any:
    """``app`` is built when first asked for (``from vmlog.cli.main import app``), not when ``vml`` starts."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _quick_answer(argv: list[str]) -> str | None:
    """What ``vml --version`` and ``vml --help`` print, without typer; None for anything else."""
    if argv == ["--version"]:
        return f"vml {__version__}\n"
    if argv in (["--help"], ["-h"]):
        return quick_help("vml", APP_HELP, COMMANDS)
    return None


def _is_usage_error(exc: BaseException) -> bool:
    """A click usage error (bad option, missing argument), recognised by its interface: typer bundles its own click."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def run() -> None:
    """Console-script entry: run the app, turning every failure into a short message and an exit code.

    A product error prints its message and fix and exits with its class's code (``docs/errors.md``);
    a full disk says so in one line with its fix; anything else was not foreseen, so it is reported in
    one line with :data:`INTERNAL_ERROR_EXIT_CODE`. With ``--json`` the error is also printed as JSON
    on stdout. ``VMLOG_DEBUG=1`` lets errors through with their traceback.
    """
    quick = _quick_answer(sys.argv[1:])
    if quick is not None:
        sys.stdout.write(quick)
        sys.exit(0)
    if "app" not in globals():  # a test that put its own app there means that app to answer
        from vmlog.cli.fast import answer

        code = answer(sys.argv[1:])
        if code is not None:
            sys.exit(code)
    import typer

    debug = bool(os.environ.get("VMLOG_DEBUG"))
    as_json = wants_json(sys.argv[1:])
    application = globals().get("app") or __getattr__("app")  # a test may have put another app there
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        result = application(standalone_mode=False, prog_name="vml")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except BaseException as exc:
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if debug and isinstance(exc, Exception) and not isinstance(exc, typer.Abort):
            raise
        sys.exit(report_failure(exc, as_json=as_json))
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    run()
