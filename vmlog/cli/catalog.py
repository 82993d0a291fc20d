"""``vml catalog``: add, list and remove the appliance catalogs this vmlog home reads."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import appliances
from vmlog.cli.output import info, out, print_json, warn

app = typer.Typer(help="Appliance catalogs (vmlog JSON catalogs or Vagrant box metadata).", no_args_is_help=True)


@app.command("add")
def add(
    location: Annotated[str, typer.Argument(help="https:// URL or local path of the catalog JSON.")],
    name: Annotated[str | None, typer.Option("--name", help="Name to record it under.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
) -> None:
    """Read a catalog once to check it, then record it."""
    entry = appliances.add_catalog(location, name=name, insecure=insecure)
    info(Text.assemble("added catalog ", (entry.name, "bold"), f" ({entry.location})"))


@app.command("list")
def list_(json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The catalogs recorded in this home (the built-in appliances are always available)."""
    entries = appliances.list_catalogs()
    if json_output:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        info("no catalogs added; built-in appliances: cernvm, vmlog-test")
        return
    out.print(Text(f"{'NAME':<24} LOCATION", style="dim"))
    for entry in entries:
        out.print(f"{entry.name:<24} {entry.location}")


@app.command("rm")
def rm(name: Annotated[str, typer.Argument(help="Catalog name (see `vml catalog list`).")]) -> None:
    """Forget a catalog (images already pulled stay in the store)."""
    appliances.remove_catalog(name)
    info(f"removed catalog {name}")


def report_problems(problems: list[str]) -> None:
    """Warn about the catalogs that could not be read (the others were listed)."""
    for problem in problems:
        warn(problem)
