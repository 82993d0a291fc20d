"""``vml context``: named context templates to pair with any new VM (list, show, new, edit, rm, export, import)."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import contexts
from vmlog.cli.context_options import ContextOption, SshKeyOption, UserOption, context_choice
from vmlog.cli.output import abort, info, out, print_json, warn
from vmlog.errors import InvalidInput

__all__ = ["ContextOption", "SshKeyOption", "UserOption", "app", "context_choice"]

app = typer.Typer(
    help="Context templates: named, reusable contextualisations (user, SSH key, CernVM-FS, files) for new VMs.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NameArgument = Annotated[str, typer.Argument(help="Template name.")]


@app.command("list")
def list_(json_output: JsonOption = False) -> None:
    """Every context template: the built-in ones (CernVM's public contexts) first, then yours."""
    rows = contexts.list_templates()
    if json_output:
        print_json([row.to_dict() for row in rows])
        return
    width = max(20, *(len(row.name) for row in rows))
    out.print(Text(f"  {'TEMPLATE':<{width}} {'KIND':<8} {'ORIGIN':<9} DESCRIPTION", style="dim"))
    for row in rows:
        origin = "built-in" if row.builtin else ""
        text = row.description if row.problem is None else f"(broken: {row.problem})"
        out.print(Text.assemble("  ", (f"{row.name:<{width}}", "bold"), f" {row.kind or '?':<8} {origin:<9} {text}"))


@app.command("show")
def show(name: NameArgument, json_output: JsonOption = False) -> None:
    """A template's text, its kind and the variables it uses."""
    details = contexts.show_template(name)
    if json_output:
        print_json(details.to_dict())
        return
    summary = details.summary
    where = "built-in" if summary.builtin else summary.path
    variables = ", ".join("{" + v + "}" for v in summary.variables) or "none"
    info(f"{summary.name}: {summary.kind} ({where}); variables {variables}")
    out.print(details.text, end="" if details.text.endswith("\n") else "\n")


@app.command("new")
def new(
    name: NameArgument,
    copy_from: Annotated[
        str | None, typer.Option("--from", help="Copy this template (e.g. a built-in one) instead of a skeleton.")
    ] = None,
    kind: Annotated[str, typer.Option("--kind", help="nocloud (cloud-init) or cernvm.")] = "nocloud",
    description: Annotated[str, typer.Option("--description", help="One line saying what it is for.")] = "",
) -> None:
    """Create a template: a commented skeleton of KIND, or a copy of another one (--from)."""
    details = contexts.new_template(name, kind=kind, copy_from=copy_from, description=description)
    info(f"created context template {name} at {details.summary.path}; change it with `vml context edit {name}`")


def _editor() -> list[str]:
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(command)


@app.command("edit")
def edit(name: NameArgument) -> None:
    """Open a template in $VISUAL or $EDITOR; it is checked when you save, and kept as it was if invalid."""
    details = contexts.template_for_edit(name)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix=f"vml-context-{name}-", delete=False) as handle:
        handle.write(details.text)
        draft = Path(handle.name)
    try:
        done = subprocess.run([*_editor(), str(draft)], check=False)
    except FileNotFoundError as exc:
        draft.unlink(missing_ok=True)
        abort(f"cannot run the editor: {exc}", fix="set VISUAL or EDITOR to your editor's command", code=2)
    if done.returncode != 0:
        draft.unlink(missing_ok=True)
        abort(f"the editor exited with {done.returncode}; {name} is unchanged")
    text = draft.read_text(encoding="utf-8", errors="surrogateescape")
    if text == details.text:
        draft.unlink(missing_ok=True)
        info(f"{name} is unchanged")
        return
    try:
        contexts.save_template_text(name, text)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{exc.message}; {name} is kept as it was, your edit is in {draft}",
            fix=f"fix the edit, then `vml context import {draft} --name {name} --replace`",
        ) from None
    draft.unlink(missing_ok=True)
    info(f"saved context template {name}")


@app.command("rm")
def rm(name: NameArgument) -> None:
    """Remove one of your templates (projects made with it keep their context)."""
    contexts.remove_template(name)
    info(f"removed context template {name}")


@app.command("export")
def export(
    name: NameArgument,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: ./NAME.toml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
) -> None:
    """Write a template as one file, to give to someone or keep with an analysis."""
    written = contexts.export_template(name, output or Path(f"{name}.toml"), overwrite=force)
    info(f"wrote context template {name} to {written}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A template file (.toml), e.g. one `vml context export` wrote.")],
    name: Annotated[str | None, typer.Option("--name", help="Template name (default: the file's name).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a template of that name.")] = False,
) -> None:
    """Add a template from a file; it is checked completely first and nothing is written if it is refused."""
    details = contexts.import_template(file, name=name, replace=replace)
    summary = details.summary
    info(f"imported context template {summary.name} ({summary.kind}) to {summary.path}")
    if "ssh_key" not in summary.variables:
        warn(f"{summary.name} does not use {{ssh_key}}: unless it names a key itself, `vml ssh` cannot log in")
