"""``vml state push|pull`` and ``vml state list --remote``: states through an OCI registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import exchange
from vmlog.app import registry as app_registry
from vmlog.app.types import VerifiedBundle, Workspace
from vmlog.cli.output import info, one_line, out, print_json, warn
from vmlog.cli.progress import status

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
UsernameOption = Annotated[
    str | None,
    typer.Option("--username", "-u", help="Registry user (default: the Podman/Docker auth file or credential helper)."),
]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password (or token) for --username from stdin.")
]
CaFileOption = Annotated[
    Path | None,
    typer.Option("--ca-file", help="PEM file of the registry's CA (default: certs.d/HOST/ca.crt, then the system's).",
                 exists=True, dir_okay=False),
]
RememberOption = Annotated[
    bool, typer.Option("--remember-password", help="Keep the --password-stdin password in the system keyring.")
]
PlainHttpOption = Annotated[
    bool, typer.Option("--plain-http", help="Talk HTTP, not HTTPS (a registry on this machine only).")
]


def login_from(username: str | None, password_stdin: bool, ca_file: Path | None, plain_http: bool = False
               ) -> app_registry.Login:
    """The registry login the options give; the password is read from stdin only with --password-stdin."""
    secret = sys.stdin.read() if password_stdin else None
    return app_registry.Login.from_stdin(username, secret, ca_file=ca_file, plain_http=plain_http)


def push(
    target: Annotated[str, typer.Argument(help="Where to: HOST[:PORT]/REPOSITORY[:TAG] (tag: the state's name).")],
    ref: Annotated[str, typer.Argument(help="State: name, id prefix, HEAD, HEAD~N.")] = "HEAD",
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project (default: the current one).")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Push only what changed since this earlier state (already in the repository)."),
    ] = None,
    sign: Annotated[
        bool, typer.Option("--sign/--no-sign", help="Sign the state with your key (default: sign).")
    ] = True,
    mount_from: Annotated[
        str | None,
        typer.Option("--mount-from", help="Another repository of the same registry that may hold the base already."),
    ] = None,
    chunk_mb: Annotated[
        int | None, typer.Option("--chunk-mb", help="Upload in chunks of this many MB (for size-limiting proxies).")
    ] = None,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    remember_password: RememberOption = False,
    ca_file: CaFileOption = None,
    plain_http: PlainHttpOption = False,
    json_output: JsonOption = False,
) -> None:
    """Push a state to an OCI registry; only the blobs the repository lacks are sent."""
    login = login_from(username, password_stdin, ca_file, plain_http)
    with status(f"Pushing {ref} to {target}") as progress:
        result = app_registry.push_state(
            target, project, ref, since=since, sign=sign, login=login, mount_from=mount_from,
            chunk_size=chunk_mb << 20 if chunk_mb else None, progress=progress,
        )
    if remember_password:
        login.remember(target)
    if json_output:
        print_json(result.to_dict())
        return
    sent = f"{len(result.uploaded)} blobs sent ({result.bytes_uploaded / 1e6:.1f} MB)"
    info(Text.assemble("pushed ", (result.state_id[:12], "bold"), f" {result.state_name or ''} to ",
                       (result.reference, "bold"), f": {sent}, {len(result.present)} already there"))
    out.print(f"{result.reference}@{result.digest}", markup=False, soft_wrap=True)


def _ask(bundle: VerifiedBundle) -> bool:
    """Ask on the terminal; without one (scripts, pipes) the answer is no."""
    if not sys.stdin.isatty():
        return False
    signer = one_line(exchange.describe_signer(bundle.signer))
    return typer.confirm(f"Import state {one_line(str(bundle.state.get('name') or ''))} ({signer}) anyway?")


def pull(
    source: Annotated[str, typer.Argument(help="What: HOST[:PORT]/REPOSITORY:TAG or ...@sha256:DIGEST.")],
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="Project to create, or existing project (same base) to add a branch to."),
    ] = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="Import an unsigned or unknown-signer state without asking.")
    ] = False,
    remember_signer: Annotated[
        bool, typer.Option("--remember-signer", help="Accept the signer's key for future imports.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow plain-HTTP base downloads (the sha256 is still checked).")
    ] = False,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Hypervisor of a new project: kvm (default), virtualbox or vmware.")
    ] = None,
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    remember_password: RememberOption = False,
    ca_file: CaFileOption = None,
    plain_http: PlainHttpOption = False,
    json_output: JsonOption = False,
) -> None:
    """Pull a state from an OCI registry, verify it like `vml state import`, and rebuild it here."""
    login = login_from(username, password_stdin, ca_file, plain_http)
    with status(f"Pulling {source}") as progress:
        result = app_registry.pull_state(source, project=project, trust=trust, confirm=_ask, login=login,
                                         insecure=insecure, backend=backend, progress=progress)
    if remember_password:
        login.remember(source)
    imported = result.imported
    if remember_signer and imported.signer is not None and not imported.signer.known:
        fp = exchange.remember_signer(Workspace.default(), imported.signer)
        info(f"accepted the key of {imported.signer.name} ({fp})")
    if json_output:
        print_json(result.to_dict())
        return
    for parent in result.parents:
        info(f"pulled the parent state {parent} first")
    where = "new project" if imported.new_project else "project"
    base = " (base appliance from the registry)" if result.base_from_registry else (
        " (base appliance downloaded and verified)" if imported.base_downloaded else "")
    info(Text.assemble(f"pulled state {imported.state_id[:12]} {imported.state_name or ''} into {where} ",
                       (imported.project, "bold"), base))
    if imported.memory_skipped:
        warn(f"the memory image was not imported: {imported.memory_note}")


def list_remote(
    repository: Annotated[str, typer.Argument(help="HOST[:PORT]/REPOSITORY")],
    username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False,
    ca_file: CaFileOption = None,
    plain_http: PlainHttpOption = False,
    json_output: JsonOption = False,
) -> None:
    """The tags of a repository: each state's name, id, parent and signer, and the bases."""
    show_remote(repository, json_output=json_output, login=login_from(username, password_stdin, ca_file, plain_http))


def show_remote(repository: str, *, json_output: bool = False, login: app_registry.Login | None = None) -> None:
    """What ``vml state list --remote REPOSITORY`` prints (``vmlog.cli.state.list_`` calls it)."""
    listing = app_registry.list_remote(repository, login=login)
    if json_output:
        print_json(listing.to_dict())
        return
    if not listing.entries:
        info(f"{listing.repository} holds no tags yet; push one with `vml state push {listing.repository}:TAG`")
        return
    out.print(Text(f"  {'TAG':<24}  {'KIND':<5}  {'ID':<12}  {'NAME':<20}  {'PARENT':<12}  SIGNER", style="dim"))
    for e in listing.entries:
        parent = (e.parent or "-")[:12]
        out.print(f"  {e.tag:<24}  {e.kind:<5}  {(e.state_id or '-')[:12]:<12}  {one_line(e.state_name or ''):<20}"
                  f"  {parent:<12}  {one_line(e.signer or '')}", markup=False, soft_wrap=True)
