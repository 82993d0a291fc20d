"""``vml appliance``: list, search, inspect, pull, verify and remove base appliances."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from vmlog.app import appliances
from vmlog.app.appliances import ApplianceListing
from vmlog.cli.catalog import report_problems
from vmlog.cli.output import err, info, out, print_json
from vmlog.cli.progress import Interrupted, run_interruptible
from vmlog.errors import Cancelled, NotFound

app = typer.Typer(help="Base appliances: find them in catalogs, pull, verify and remove them.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _unreachable_catalogs(exc: NotFound) -> NotFound:
    """An appliance not found while a catalog could not be read: say the catalog is unreachable, not that the
    appliance does not exist."""
    problems = appliances.list_appliances().problems
    if not problems:
        return exc
    return NotFound(
        f"{exc.message}; a catalog could not be read, the appliance may be there: {'; '.join(problems)}",
        fix="check the network (and http_proxy/https_proxy behind a proxy), then retry; `vml catalog list` shows"
        " the catalogs",
    )


def _listing(listing: ApplianceListing, json_output: bool) -> None:
    report_problems(listing.problems)
    rows = listing.to_dict()
    if json_output:
        print_json(rows)
        return
    if rows:
        out.print(Text(f"{'NAME':<20} TITLE (CATALOG; VERSIONS)", style="dim"))
    for row in rows:
        versions = ", ".join(row["versions"])
        mark = (f" (pulled: {', '.join(row['pulled'])})", "green") if row["pulled"] else ""
        out.print(
            Text.assemble(
                (f"{row['name']:<20}", "bold"), f" {row['title']} ", (f"({row['catalog']}; {versions})", "dim"), mark
            )
        )


@app.command("list")
def list_(json_output: JsonOption = False) -> None:
    """Every appliance of every catalog, and which versions are already in the store."""
    _listing(appliances.list_appliances(), json_output)


@app.command("search")
def search(text: Annotated[str, typer.Argument(help="Words to look for.")], json_output: JsonOption = False) -> None:
    """Appliances whose name, title or description contains TEXT."""
    _listing(appliances.list_appliances(text), json_output)


@app.command("info")
def info_(
    name: Annotated[str, typer.Argument(help="Appliance name.")],
    version: Annotated[str | None, typer.Option("--version", help="Version (default: latest).")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Versions, images, requirements and context kind of one appliance (CernVM asks its server)."""
    try:
        found = appliances.find_appliance(name, version, insecure=insecure)
    except NotFound as exc:
        raise _unreachable_catalogs(exc) from exc
    appliance, resolved = found.appliance, found.version
    if json_output:
        print_json(found.to_dict())
        return
    out.print(Text.assemble((appliance.title, "bold"), f" ({appliance.name}) — {appliance.description}"))
    out.print(f"  version {resolved.version}, context {resolved.context}, memory >= {resolved.min_memory_mib} MiB")
    if resolved.scratch_disk_gib:
        out.print(f"  needs an empty scratch disk of >= {resolved.scratch_disk_gib} GiB")
    for key, src in resolved.images.items():
        size = f"{src.size} bytes" if src.size else "size unknown"
        where = ", ".join(src.urls) or "built on this machine"
        out.print(f"  {key:<16} {size:<20} {where}")


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="Appliance name.")],
    version: Annotated[str | None, typer.Option("--version", help="Version (default: latest).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Image format to download (qcow2, hdd, iso...).")] = None,
    disk_format: Annotated[
        str, typer.Option("--disk-format", help="Disk format of the backend (qcow2 libvirt, vdi, vmdk).")
    ] = "qcow2",
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Download, verify and convert an appliance; an interrupted pull resumes where it stopped."""
    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"pull {name}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            pulled = run_interruptible(
                lambda cancel: appliances.pull_appliance(
                    name,
                    version=version,
                    fmt=fmt,
                    disk_format=disk_format,
                    insecure=insecure,
                    progress=progress,
                    cancel=cancel,
                )
            )
        except NotFound as exc:
            raise _unreachable_catalogs(exc) from exc
        except (Interrupted, Cancelled):
            raise Cancelled(
                "pull interrupted; the partial download is kept", fix=f"run `vml appliance pull {name}` to resume"
            ) from None
    if json_output:
        print_json(pulled.to_dict())
        return
    info(
        Text.assemble(("pulled", "green"), f" {pulled.appliance} {pulled.version.version} ({pulled.image.sha256[:12]})")
    )
    out.print(str(pulled.disk))


@app.command("verify")
def verify(
    ref: Annotated[str | None, typer.Argument(help="Image (sha256 prefix or name[:version]); all if omitted.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Re-hash stored images and report any that no longer match their digest."""
    verified = []
    for image in appliances.verify_images(ref):
        verified.append(
            {"name": image.name, "version": image.version, "format": image.format, "sha256": image.sha256, "ok": True}
        )
        if not json_output:
            info(Text.assemble(("ok", "green"), f" {image.name}-{image.version}.{image.format} {image.sha256[:12]}"))
    if json_output:
        print_json(verified)


@app.command("rm")
def rm(ref: Annotated[str, typer.Argument(help="Image (sha256 prefix or name[:version]).")]) -> None:
    """Delete an image from the store; refused while a project or state uses it."""
    image = appliances.remove_image(ref)
    info(f"removed {image.name}-{image.version}.{image.format} ({image.sha256[:12]})")


@app.command("images")
def images(json_output: JsonOption = False) -> None:
    """The images in the store, with the projects/states that use them."""
    rows = [row.to_dict() for row in appliances.list_images()]
    if json_output:
        print_json(rows)
        return
    if rows:
        out.print(Text("SHA256       IMAGE SIZE USERS", style="dim"))
    for row in rows:
        used = f" used by {', '.join(row['refs'])}" if row["refs"] else ""
        out.print(f"{row['sha256'][:12]} {row['name']}-{row['version']}.{row['format']} {row['size']} bytes{used}")
