"""``vml catalog``: add, list and remove the appliance catalogs this vmlog home reads."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from vmlog import paths
from vmlog.appliances.catalog import Catalogs
from vmlog.cli.output import info, out, print_json, warn

app = typer.Typer(help="Appliance catalogs (vmlog JSON catalogs or Vagrant box metadata).", no_args_is_help=True)


def _catalogs(insecure: bool = False) -> Catalogs:
    return Catalogs(paths.home().config, insecure=insecure)


@app.command("add")
def add(
    location: Annotated[str, typer.Argument(help="https:// URL or local path of the catalog JSON.")],
    name: Annotated[str | None, typer.Option("--name", help="Name to record it under.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
) -> None:
    """Read a catalog once to check it, then record it."""
    entry = _catalogs(insecure).add(location, name=name)
    info(Text.assemble("added catalog ", (entry.name, "bold"), f" ({entry.location})"))


@app.command("list")
def list_(json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The catalogs recorded in this home (the built-in appliances are always available)."""
    entries = _catalogs().entries()
    if json_output:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        info("no catalogs added; built-in appliances: cernvm, vmlog-test")
    for entry in entries:
        out.print(f"{entry.name:<24} {entry.location}")


@app.command("rm")
def rm(name: Annotated[str, typer.Argument(help="Catalog name (see `vml catalog list`).")]) -> None:
    """Forget a catalog (images already pulled stay in the store)."""
    _catalogs().remove(name)
    info(f"removed catalog {name}")


def report_problems(catalogs: Catalogs) -> None:
    for problem in catalogs.problems:
        warn(problem)
