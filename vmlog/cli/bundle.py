"""``vml state export|import|send|inspect``: sharing states as ``.vmlstate`` files; ``vml config mail``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import exchange
from vmlog.app import ova as app_ova
from vmlog.app.mail import MAIL_ATTACHMENT_LIMIT, SmtpSettings, load_settings, save_settings
from vmlog.app.types import VerifiedBundle, Workspace
from vmlog.cli.output import info, one_line, out, print_json, warn
from vmlog.cli.progress import status
from vmlog.errors import NotFound

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: the current one).")
]
RefArgument = Annotated[str, typer.Argument(help="State: name, id prefix, HEAD, HEAD~N.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only what changed since this earlier state (the recipient must have it)."),
]
MemoryOption = Annotated[
    bool, typer.Option("--with-memory", help="Include the memory image (same hypervisor only).")
]
SignOption = Annotated[
    bool, typer.Option("--sign/--no-sign", help="Sign the bundle with your key (default: sign).")
]
BaseUrlOption = Annotated[
    list[str] | None,
    typer.Option("--base-url", help="A URL the recipient can download the base appliance from (repeatable)."),
]


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _export_ova(
    ref: str, output: Path | None, since: str | None, with_memory: bool, project: str | None, json_output: bool
) -> None:
    """``export --format ova``: a whole VM of one state, for readers without vmlog."""
    if since or with_memory:
        raise typer.BadParameter("--since and --with-memory apply to .vmlstate bundles only", param_hint="--format")
    with status(f"Exporting {ref} as OVA") as progress:
        result = app_ova.export_state_ova(project, ref, output, progress=progress)
    if json_output:
        print_json(result.to_dict())
    else:
        out.print(str(result.path), markup=False)
    info(f"OVA of state {result.state_id[:12]}: {_mb(result.size)}; VirtualBox imports it with File > Import Appliance")


def export(
    ref: RefArgument = "HEAD",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File or directory to write.")] = None,
    since: SinceOption = None,
    with_memory: MemoryOption = False,
    sign: SignOption = True,
    base_url: BaseUrlOption = None,
    project: ProjectOption = None,
    json_output: JsonOption = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="vmlstate (default) or ova: the whole VM of this state, for any OVF reader."
        ),
    ] = "vmlstate",
) -> None:
    """Write a state as one .vmlstate file: what changed since the base appliance (or --since)."""
    if fmt == "ova":
        _export_ova(ref, output, since, with_memory, project, json_output)
        return
    if fmt != "vmlstate":
        raise typer.BadParameter("use vmlstate or ova", param_hint="--format")
    with status(f"Exporting {ref}") as progress:
        result = exchange.export_state(
            project,
            ref,
            output,
            since=since,
            with_memory=with_memory,
            sign=sign,
            base_urls=base_url or (),
            progress=progress,
        )
    if json_output:
        print_json(
            {
                "path": str(result.path),
                "size": result.size,
                "fits_mail": result.fits_mail,
                "state": result.state_id,
                "since": result.since_id,
                "signer_fingerprint": result.signer_fingerprint,
                "base_urls": list(result.base_urls),
            }
        )
    else:
        out.print(str(result.path), markup=False)
    verdict = (
        f"fits a {MAIL_ATTACHMENT_LIMIT // 1_000_000} MB mail attachment"
        if result.fits_mail
        else f"too large for a {MAIL_ATTACHMENT_LIMIT // 1_000_000} MB mail attachment: share it another way,"
        " or export with --since a state the recipient has"
    )
    info(f"bundle of state {result.state_id[:12]}: {_mb(result.size)}, {verdict}")
    if result.signer_fingerprint:
        info(f"signed with key {result.signer_fingerprint}")
    if not result.base_urls:
        warn(
            "the store knows no download URL for the base appliance: the recipient must already have it"
            " (add one with --base-url)"
        )


def _ask(bundle: VerifiedBundle) -> bool:
    """Ask on the terminal; without one (scripts, pipes) the answer is no."""
    if not sys.stdin.isatty():
        return False
    signer = one_line(exchange.describe_signer(bundle.signer))
    return typer.confirm(f"Import {one_line(bundle.path.name)} ({signer}) anyway?")


def import_(
    file: Annotated[Path, typer.Argument(help="The .vmlstate file.", exists=True, dir_okay=False)],
    project: Annotated[
        str | None,
        typer.Option(
            "--project", "-p", help="Project to create, or existing project (same base) to add a branch to."
        ),
    ] = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="Import an unsigned or unknown-signer bundle without asking.")
    ] = False,
    remember_signer: Annotated[
        bool, typer.Option("--remember-signer", help="Accept the signer's key for future imports.")
    ] = False,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow plain-HTTP base downloads (the sha256 is still checked)."),
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="Hypervisor of a new project: kvm (default), virtualbox or vmware."),
    ] = None,
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="libvirt URI of a new kvm project; a remote one (qemu+ssh://USER@HOST/system)"
                     " keeps its disks on that host."),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option("--base", help="The base image file, where the sender's base has no URL (its sha256 is checked).",
                     exists=True, dir_okay=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Verify a .vmlstate file completely, fetch its base if needed, and rebuild the state here."""
    with status(f"Verifying {file.name}"):
        reader = exchange.open_bundle(file)
    bundle = reader.verify_header()
    state = bundle.state
    named = one_line(f"{str(state.get('id'))[:12]} {state.get('name') or ''} by {state.get('author')}")
    info(f"{one_line(file.name)}: state {named}")
    info(f"  {one_line(exchange.describe_signer(bundle.signer))}")
    exchange.check_trust(bundle, trust=trust, confirm=_ask)  # asks outside the spinner
    with status(f"Importing {file.name}") as progress:
        result = exchange.import_state(
            reader, project=project, trust=True, insecure=insecure, backend=backend, base_file=base,
            backend_options={"uri": uri} if uri else None, progress=progress,
        )
    if remember_signer and result.signer is not None and not result.signer.known:
        fp = exchange.remember_signer(Workspace.default(), result.signer)
        info(f"accepted the key of {result.signer.name} ({fp})")
    _say_imported(result, json_output)


def _say_imported(result: exchange.ImportResult, json_output: bool) -> None:
    """What `vml state import` prints: JSON on request, then the summary, warnings and the next step."""
    if json_output:
        print_json(
            {
                "project": result.project,
                "state": result.state_id,
                "name": result.state_name,
                "new_project": result.new_project,
                "base_downloaded": result.base_downloaded,
                "since": result.since_id,
                "sender": result.sender,
                "signer": result.signer.name if result.signer else None,
                "signer_known": result.signer.known if result.signer else None,
                "ssh_port": result.ssh_port,
                "user": result.user,
                "releases_not_mounted": result.releases_not_mounted,
                "warnings": result.warnings,
            }
        )
    where = "new project" if result.new_project else "project"
    info(
        Text.assemble(
            f"imported state {result.state_id[:12]} {result.state_name or ''} into {where} ",
            (result.project, "bold"),
            " (base appliance downloaded and verified)" if result.base_downloaded else "",
        )
    )
    if result.memory_skipped:
        warn(
            f"the bundle's memory image was not imported ({result.memory_note}); the disks were, and the"
            " VM cold-boots from them"
        )
    for warning in result.warnings:
        warn(warning)
    if result.new_project and result.ssh_port:
        info(f"log in with `vml ssh {result.project}` (as {result.user}, port {result.ssh_port})")
    if not result.new_project:
        info(f"go there with `vml state restore {result.state_id[:12]} -p {result.project}`")


def send(
    to: Annotated[str, typer.Option("--to", help="Recipient's mail address.")],
    ref: RefArgument = "HEAD",
    client: Annotated[
        bool, typer.Option("--client", help="Open the desktop mail client instead of SMTP.")
    ] = False,
    since: SinceOption = None,
    with_memory: MemoryOption = False,
    sign: SignOption = True,
    base_url: BaseUrlOption = None,
    project: ProjectOption = None,
) -> None:
    """Export a state and mail it (SMTP settings from `vml config mail`), or hand it to the mail client."""
    with status(f"Sending {ref}") as progress:
        result = exchange.send_state(
            project,
            ref,
            to,
            since=since,
            with_memory=with_memory,
            client=client,
            sign=sign,
            base_urls=base_url or (),
            progress=progress,
        )
    if result.via == "client":
        info(f"opened a new message to {to} with {result.export.path} attached")
    else:
        info(f"mailed state {result.export.state_id[:12]} ({_mb(result.export.size)}) to {to}")


def inspect(
    file: Annotated[Path, typer.Argument(help="The .vmlstate file.", exists=True, dir_okay=False)],
    json_output: JsonOption = False,
) -> None:
    """Verify a .vmlstate file and show what it holds and who signed it (writes nothing)."""
    data = exchange.inspect_bundle(file)
    if json_output:
        print_json(data.to_dict())
        return
    state, base = data.state, data.base
    out.print(f"state:     {state.get('id')} {state.get('name') or ''}", markup=False)
    out.print(f"author:    {state.get('author')}", markup=False)
    out.print(f"signature: {data.signature}", markup=False)
    out.print(
        f"base:      {base['name']} {base['version']} sha256 {base['sha256'][:16]}…"
        f" ({'in the store' if data.base_in_store else 'will be downloaded'})",
        markup=False,
    )
    if data.since:
        out.print(f"since:     {data.since['state_id']}", markup=False)
    for disk in data.disks:
        out.print(f"disk:      {disk['label']} ({_mb(disk['changed_bytes'])} changed)", markup=False)


# -- vml config mail -----------------------------------------------------------------------------
config_app = typer.Typer(help="Settings of this vmlog home.", no_args_is_help=True)


@config_app.command("mail")
def mail(
    host: Annotated[str | None, typer.Option("--host", help="SMTP server.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="SMTP port (587 STARTTLS, 465 SSL).")] = None,
    security: Annotated[str | None, typer.Option("--security", help="none, starttls or ssl.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="SMTP login.")] = None,
    sender: Annotated[str | None, typer.Option("--sender", help="From: address (default: the user).")] = None,
    size_limit_mb: Annotated[
        float | None, typer.Option("--size-limit", help="Largest message the server takes, in MB (the bundle is"
                                                     " base64-encoded: bundles up to 73% of it fit).")
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option(
            "--ca-file",
            help="PEM file of the CA that signed the server's certificate (a private CA); trusted instead"
            " of the system's CAs. --ca-file '' goes back to system trust.",
        ),
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Ask for the SMTP password and keep it in the system keyring.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show or change the SMTP settings `vml state send` uses (the password lives in the keyring).

    The connection is encrypted (STARTTLS or SSL) unless --security none, and the server's
    certificate is checked against the system's trusted CAs, or against --ca-file.
    """
    current = load_settings()
    changes = {
        k: v
        for k, v in {"host": host, "port": port, "security": security, "user": user, "sender": sender}.items()
        if v is not None
    }
    if size_limit_mb is not None:
        changes["size_limit"] = int(size_limit_mb * 1e6)
    if ca_file is not None:
        changes["ca_file"] = str(Path(ca_file).expanduser().resolve()) if ca_file else None
    if changes:
        if current is None and "host" not in changes:
            raise typer.BadParameter("give --host for the first mail settings")
        data = {**(current.__dict__ if current else {}), **changes}
        if "port" not in changes and "security" in changes and current is None:
            data["port"] = {"ssl": 465, "starttls": 587, "none": 25}[changes["security"]]
        current = SmtpSettings(**data)
        if current.ca_file:
            current.ssl_context()  # a CA file that cannot be read is refused now, not at the next send
        path = save_settings(current)
        info(f"saved mail settings to {path}")
    if password:
        if current is None:
            raise typer.BadParameter("configure --host and --user before the password")
        current.store_password(typer.prompt("SMTP password", hide_input=True))
        info("stored the password in the system keyring")
    if current is None:
        raise NotFound("no SMTP server is configured", fix="vml config mail --host HOST --user USER")
    if json_output:
        print_json(current.__dict__)
        return
    for key, value in current.__dict__.items():
        out.print(f"{key:<11} {value}", markup=False)
