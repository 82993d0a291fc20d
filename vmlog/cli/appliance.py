"""``vml appliance``: list, search, inspect, pull, verify and remove base appliances."""

from __future__ import annotations

import threading
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

from vmlog import paths
from vmlog.appliances.catalog import Catalogs, store_name
from vmlog.appliances.pull import pull as pull_appliance
from vmlog.cli.catalog import report_problems
from vmlog.cli.output import err, info, out, print_json
from vmlog.errors import Cancelled
from vmlog.store.images import ImageStore

app = typer.Typer(help="Base appliances: find them in catalogs, pull, verify and remove them.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _store() -> ImageStore:
    return ImageStore(paths.home().images)


def _catalogs(insecure: bool = False) -> Catalogs:
    return Catalogs(paths.home().config, insecure=insecure)


def _listing(appliances, json_output: bool, catalogs: Catalogs) -> None:
    report_problems(catalogs)
    store = _store()
    pulled = {(i.name, i.version) for i in store.list()}
    rows = []
    for a in appliances:
        row = a.summary()
        row["pulled"] = sorted(v for (n, v) in pulled if n == store_name(a.name))
        rows.append(row)
    if json_output:
        print_json(rows)
        return
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
    catalogs = _catalogs()
    _listing(catalogs.appliances(), json_output, catalogs)


@app.command("search")
def search(text: Annotated[str, typer.Argument(help="Words to look for.")], json_output: JsonOption = False) -> None:
    """Appliances whose name, title or description contains TEXT."""
    catalogs = _catalogs()
    _listing(catalogs.search(text), json_output, catalogs)


@app.command("info")
def info_(
    name: Annotated[str, typer.Argument(help="Appliance name.")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="Version (default: latest).")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Versions, images, requirements and context kind of one appliance (CernVM asks its server)."""
    appliance = _catalogs(insecure).get(name)
    resolved = appliance.resolve(version)
    data = {**appliance.summary(), "resolved": resolved.to_dict()}
    if json_output:
        print_json(data)
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
    version: Annotated[str | None, typer.Option("--version", "-v", help="Version (default: latest).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Image format to download (qcow2, hdd, iso...).")] = None,
    disk_format: Annotated[
        str, typer.Option("--disk-format", help="Disk format of the backend (qcow2 libvirt, vdi, vmdk).")
    ] = "qcow2",
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to a remote host.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Download, verify and convert an appliance; an interrupted pull resumes where it stopped."""
    appliance = _catalogs(insecure).get(name)
    cancel = threading.Event()
    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"pull {appliance.name}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            pulled = pull_appliance(
                appliance,
                _store(),
                version=version,
                fmt=fmt,
                disk_format=disk_format,
                insecure=insecure,
                progress=progress,
                cancel=cancel,
            )
        except KeyboardInterrupt:
            cancel.set()
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
) -> None:
    """Re-hash stored images and report any that no longer match their digest."""
    store = _store()
    images = [store.get(ref)] if ref else store.list()
    for image in images:
        store.verify(image.sha256)
        info(Text.assemble(("ok", "green"), f" {image.name}-{image.version}.{image.format} {image.sha256[:12]}"))


@app.command("rm")
def rm(ref: Annotated[str, typer.Argument(help="Image (sha256 prefix or name[:version]).")]) -> None:
    """Delete an image from the store; refused while a project or state uses it."""
    store = _store()
    image = store.get(ref)
    store.remove(image.sha256)
    info(f"removed {image.name}-{image.version}.{image.format} ({image.sha256[:12]})")


@app.command("images")
def images(json_output: JsonOption = False) -> None:
    """The images in the store, with the projects/states that use them."""
    store = _store()
    rows = [{**i.to_dict(), "refs": store.refs(i.sha256)} for i in store.list()]
    if json_output:
        print_json(rows)
        return
    for row in rows:
        used = f" used by {', '.join(row['refs'])}" if row["refs"] else ""
        out.print(f"{row['sha256'][:12]} {row['name']}-{row['version']}.{row['format']} {row['size']} bytes{used}")
