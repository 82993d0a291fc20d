"""``vml project archive`` and ``vml project unarchive``: freeze a project into one verifiable file, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmlog.app import archive as archives
from vmlog.cli.output import abort, info, out, print_json
from vmlog.cli.progress import status

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def archive(
    project: Annotated[str | None, typer.Argument(help="The project (default: the current one).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The .vmlarchive file to write (or a directory).")
    ] = None,
    verify: Annotated[
        Path | None,
        typer.Option("--verify", help="Check this archive end to end without unpacking it.", dir_okay=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Freeze a project into one verifiable .vmlarchive: bases, every state's layer once, records, logbook, OVFs."""
    if verify is not None:
        if project is not None or output is not None:
            abort("--verify takes only the archive", fix=f"vml project archive --verify {verify}")
        with status(f"Verifying {verify.name}") as progress:
            check = archives.verify_archive(verify, progress=progress)
        if json_output:
            print_json(check.to_dict())
            return
        out.print(f"{verify}: intact, project {check.project!r}, {len(check.states)} states, {check.layers} layers")
        for base in check.bases:
            info(f"  base {base['name']}:{base['version']} {base['format']} sha256 {base['sha256']}")
        info(f"  {check.size / 1e6:.1f} MB holding {check.raw_bytes / 1e6:.1f} MB of disks; sha256 {check.sha256}")
        return
    with status("Archiving") as progress:
        result = archives.archive_project(project, output, progress=progress)
    if json_output:
        print_json(result.to_dict())
        return
    out.print(f"{result.path}: project {result.project!r}, {result.states} states, {result.layers} layers,"
        f" {result.bases} base(s), {result.size / 1e6:.1f} MB")
    info(f"  sha256 {result.sha256}")
    for note in result.notes:
        info(f"  note: {note}")


def unarchive(
    file: Annotated[Path, typer.Argument(help="The .vmlarchive file.", exists=True, dir_okay=False)],
    name: Annotated[str | None, typer.Option("--name", help="Name of the new project (default: the archived one).")]
    = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Hypervisor of the new project: kvm (default), virtualbox, vmware.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check a .vmlarchive end to end, then rebuild its project here with every state (writes nothing if bad)."""
    with status(f"Unarchiving {file.name}") as progress:
        result = archives.unarchive_project(file, name=name, backend=backend, progress=progress)
    if json_output:
        print_json(result.to_dict())
        return
    out.print(f"project {result.project!r} on {result.backend}: {result.states} states from {file.name}")
    if result.bases_added:
        info(f"  {len(result.bases_added)} base image(s) added to the store")
    for note in result.notes:
        info(f"  note: {note}")
