"""``vml release ...``: release sources, listing, and mounting releases as lazy read-only filesystems."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from vmlog.app import releases as app_releases
from vmlog.app.releases import DEFAULT_CACHE_LIMIT, ReleaseOutcome
from vmlog.cli.output import info, out, print_json, warn
from vmlog.errors import InvalidInput, NotFound

app = typer.Typer(help="List, mount and unmount software releases (CernVM-FS repositories, HTTP release trees).")
source_app = typer.Typer(help="Manage the release sources vmlog lists releases from.")
app.add_typer(source_app, name="source")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
SourceOption = Annotated[str | None, typer.Option("--source", "-s", help="Source name (default: the only one).")]
ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="The project whose VM gets the release (default: host only).")
]


def parse_size(text: str) -> int:
    """``4G``, ``500M``, ``123456`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise InvalidInput(f"cannot read size {text!r}", fix="use e.g. 500M or 4G")
    factor = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[match.group(2).upper()]
    return int(float(match.group(1)) * factor)


@source_app.command("add")
def source_add(
    url: Annotated[str, typer.Argument(help="http://server/cvmfs/<repo> or the URL of an HTTP release tree.")],
    kind: Annotated[str, typer.Option(help="auto, cvmfs or http-tree.")] = "auto",
    key: Annotated[
        Path | None, typer.Option(help="Master public key (.pub) that signs the CernVM-FS whitelist.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the source (default: last URL component).")] = None,
    pattern: Annotated[
        str, typer.Option(help="Where releases are, e.g. 'sw/software/{series}/{release}'.")
    ] = "{release}",
    proxy: Annotated[str | None, typer.Option(help="HTTP proxy ('' for none; default: environment).")] = None,
    check: Annotated[bool, typer.Option(help="Contact the server and verify it before adding.")] = True,
) -> None:
    """Add a release source (verifies its signatures or catalogue digest first)."""
    key_pem = key.read_text("ascii") if key else None
    added = app_releases.add_release_source(
        url, kind=kind, key_pem=key_pem, name=name, pattern=pattern, proxy=proxy, check=check, say=info
    )
    info(f"added release source {added.name} ({added.kind})")


@source_app.command("list")
def source_list(json_output: JsonOption = False) -> None:
    """Show the configured release sources."""
    configs = [s.to_dict() for s in app_releases.list_release_sources()]
    if json_output:
        print_json(configs)
        return
    for config in configs:
        out.print(f"{config['name']:<20} {config['kind']:<10} {config['url']}  pattern={config['pattern']}")


@source_app.command("remove")
def source_remove(name: str) -> None:
    """Forget a release source (mounted releases stay mounted)."""
    app_releases.remove_release_source(name)
    info(f"removed release source {name}")


@app.command("list")
def list_releases(
    available: Annotated[bool, typer.Option("--available", help="Only the releases the sources publish.")] = False,
    running: Annotated[bool, typer.Option("--running", help="Only the mounted releases.")] = False,
    source: SourceOption = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """List available releases (with revision and tag) and mounted ones (of one project with --project)."""
    show_available = available or not running
    show_running = running or not available
    result: dict[str, list] = {}
    if show_available:
        result["available"] = [r.to_dict() for r in app_releases.available_releases(source).releases]
    if show_running and project:
        result["running"] = [
            {
                "name": r.item.name,
                "project": r.project,
                "revision": r.item.release.revision,
                "tag": r.item.release.tag,
                "pin": r.item.release.pin,
                "guest": r.item.guest,
                "guest_path": r.item.guest_path,
                "mountpoint": str(r.host_mountpoint) if r.host_mountpoint else None,
            }
            for r in app_releases.list_project_releases(project)
        ]
    elif show_running:
        result["running"] = [
            {
                "name": h.name,
                "project": h.project,
                "revision": h.release.revision,
                "tag": h.release.tag,
                "pin": h.release.pin,
                "mountpoint": str(h.mountpoint),
                "pid": h.pid,
                "log": str(h.log_file),
            }
            for h in app_releases.host_mounts()
        ]
    if json_output:
        print_json(result if show_available and show_running else next(iter(result.values())))
        return
    if "available" in result:
        out.print("Available", style="bold")
        for r in result["available"]:
            series = f"{r['series']}/" if r["series"] else ""
            out.print(f"  {series}{r['name']:<16} revision {r['revision']:<6} {r['tag']:<16} ({r['source']})")
    if "running" in result:
        out.print("Mounted", style="bold")
        for m in result["running"]:
            owner = f"  project {m['project']}" if m.get("project") else ""
            where = f" guest {m['guest_path']}" if m.get("guest_path") else ""
            at = m["mountpoint"] or "-"
            out.print(f"  {m['name']:<16} revision {m['revision']:<6} {m['tag']:<16} at {at}{where}{owner}")


@app.command("mount")
def mount(
    name: Annotated[str, typer.Argument(help="Release name, series/name, or its path in the source.")],
    source: SourceOption = None,
    at: Annotated[Path | None, typer.Option("--at", help="Mount path (default: under vmlog's run dir).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Cache directory (persistent).")] = None,
    cache_size: Annotated[str, typer.Option(help="Cache size limit, e.g. 4G.")] = f"{DEFAULT_CACHE_LIMIT >> 30}G",
    log: Annotated[Path | None, typer.Option("--log", help="Log file of this mount.")] = None,
    revision: Annotated[int | None, typer.Option(help="Mount this revision instead of the current one.")] = None,
    project: ProjectOption = None,
    guest_path: Annotated[
        str | None, typer.Option("--guest-path", help="Where the guest sees it (with --project).")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Restart the running VM if the release cannot be added live.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Mount a release read-only; files are fetched, verified and cached on first access.

    With --project the release also appears in the project's VM (a shared folder, or the CernVM-FS
    client of a CernVM guest), and the project's saved states record its exact revision.
    """
    if project is not None:
        outcome = app_releases.mount_in_project(
            project, name, source=source, revision=revision, guest_path=guest_path, restart=restart
        )
        _say(outcome, json_output)
        return
    handle = app_releases.mount_on_host(
        name,
        source=source,
        at=at,
        cache_dir=cache,
        cache_limit=parse_size(cache_size),
        log_file=log,
        revision=revision,
    )
    info(f"mounted {handle.name} revision {handle.release.revision} ({handle.release.tag or 'no tag'})")
    out.print(str(handle.mountpoint))


@app.command("umount")
def umount(name: str, project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """Unmount a mounted release (with --project: take it out of the project's VM too)."""
    if project is not None:
        _say(app_releases.umount_in_project(project, name), json_output, verb="unmounted")
        return
    handle = app_releases.umount_on_host(name)
    info(f"unmounted {name} from {handle.mountpoint}")


def _say(outcome: ReleaseOutcome, json_output: bool, *, verb: str = "mounted") -> None:
    if json_output:
        print_json(outcome.to_dict())
        return
    for item in outcome.releases:
        info(f"{verb} {item.describe()}" + (f" at {item.guest_path}" if verb == "mounted" else ""))
    for message in outcome.messages:
        info(message)
    for warning in outcome.warnings:
        warn(warning)


@app.command("log")
def log(
    name: str,
    project: ProjectOption = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Last N lines (0: all).")] = 50) -> None:
    """Show the log of a release mount (fetches, digest errors, offline reads)."""
    path = app_releases.mount_log(name, project=project)
    if not path.exists():
        raise NotFound(f"no log for release {name}", fix="mount it first: vml release mount NAME")
    text = path.read_text("utf-8", "replace").splitlines()
    for line in text[-lines:] if lines else text:
        out.print(line, markup=False)
