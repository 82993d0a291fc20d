"""``vml state``: save, list, draw, show, restore, remove and rename the states of a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import states as app_states
from vmlog.cli.fast import STATE_LIST_HEADER, state_row, when
from vmlog.cli.output import abort, info, out, print_json, warn
from vmlog.cli.progress import status

app = typer.Typer(
    help="Saved states of a project: a tree you can go back to and branch from.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Project (default: the current one).")
]


@app.command("save")
def save(
    name: Annotated[
        str | None, typer.Argument(help="A name for the state (optional, unique in the project).")
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="What this state is.")] = "",
    name_option: Annotated[str | None, typer.Option("--name", help="The state's name (same as NAME).")] = None,
    memory: Annotated[
        bool, typer.Option("--with-memory", "--memory", help="Also save the running VM's memory.")
    ] = False,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Save the project's disks (and optionally memory) as a new state; works while the VM runs."""
    if name and name_option and name != name_option:
        abort(f"two names given ({name!r} and --name {name_option!r}); give one", code=2)
    name = name or name_option
    with status("Saving a state") as progress:
        state = app_states.save_state(project, name, message=message, memory=memory, progress=progress)
    if json_output:
        print_json(state.to_dict())
        return
    info(f"saved state {state.label()}" + (" with memory" if state.memory else ""))


@app.command("list")
def list_(
    project: ProjectOption = None,
    json_output: JsonOption = False,
    remote: Annotated[
        str | None, typer.Option("--remote", help="List what a registry repository holds: HOST[:PORT]/REPOSITORY.")
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Registry user for --remote (default: the auth file).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the registry password for --username from stdin.")
    ] = False,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="PEM file of the registry's CA.", exists=True, dir_okay=False)
    ] = None,
) -> None:
    """The states of a project, oldest first; with --remote, the states a registry repository holds."""
    if remote is not None:
        from vmlog.cli.registry_cli import list_remote  # here: only --remote pays for the HTTP client

        list_remote(remote, username, password_stdin, ca_file, json_output=json_output)
        return
    proj, states = app_states.states(project)
    ordered = sorted(states.values(), key=lambda s: (s.created, s.id))
    if json_output:
        print_json([{**s.to_dict(), "current": s.id == proj.current} for s in ordered])
        return
    if not ordered:
        info(f"project {proj.name} has no states yet; save one with `vml state save NAME`")
        return
    out.print(Text(STATE_LIST_HEADER, style="dim"))
    for s in ordered:
        out.print(state_row(s, proj.current), soft_wrap=True, markup=False)


@app.command("tree")
def tree(project: ProjectOption = None, json_output: JsonOption = False) -> None:
    """Draw the tree of states like `git log --graph`; @ marks the current state."""
    if json_output:
        proj, states = app_states.states(project)
        print_json({"current": proj.current, "states": [s.to_dict() for s in states.values()]})
        return
    for line in app_states.state_tree(project):
        out.print(line, markup=False)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="State: name, id prefix, HEAD, HEAD~N.")] = "HEAD",
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Details of one state, with its notes and, for an imported state, its sender's logbook."""
    details = app_states.show_state(project, ref)
    if json_output:
        print_json(details.to_dict())
        return
    state = details.state
    out.print(Text.assemble((state.id, "bold"), f" {state.name or ''}{'  (current)' if details.current else ''}"))
    out.print(f"  created:  {when(state.created)} by {state.author}", markup=False)
    out.print(f"  parent:   {state.parent or '-'}", markup=False)
    out.print(f"  children: {', '.join(c[:12] for c in details.children) or '-'}", markup=False)
    out.print(f"  memory:   {'yes' if state.memory else 'no'}", markup=False)
    out.print(f"  layers:   {', '.join(f'{k}={v}' for k, v in state.layers.items())}", markup=False)
    if state.message:
        out.print(f"  message:  {state.message}", markup=False)
    for mount in state.release_mounts:
        release = mount.get("release") or {}
        out.print(
            f"  release:  {mount.get('name')} revision {release.get('revision')} {release.get('tag') or ''}"
            f" pin {str(release.get('pin'))[:16]} at {mount.get('guest_path') or '-'}",
            markup=False,
        )
    for note in details.notes:
        out.print(f"  note ({when(note.created)}, {note.who}): {note.text}", markup=False)
    if details.sender_logbook:
        out.print("  sender's logbook:", markup=False)
    for record in details.sender_logbook:
        outcome = "" if record.kind == "note" else f" {record.row.get('outcome') or ''}"
        what = f"note: {record.what}" if record.kind == "note" else record.what
        detail = f"  {record.row['message']}" if record.kind != "note" and record.row.get("message") else ""
        out.print(f"    {when(record.when)}  {record.who}  {what}{outcome}{detail}", markup=False)


@app.command("restore")
def restore(
    ref: Annotated[str, typer.Argument(help="State: name, id prefix, HEAD, HEAD~N.")],
    discard: Annotated[
        bool, typer.Option("--discard", help="Throw away unsaved work instead of auto-saving it.")
    ] = False,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop a running VM first (saving it with memory).")
    ] = False,
    project: ProjectOption = None,
    json_output: JsonOption = False,
) -> None:
    """Go back to a state; the next save branches the tree. Unsaved work is auto-saved unless --discard."""
    with status(f"Restoring {ref}") as progress:
        result = app_states.restore_state(project, ref, discard=discard, stop=stop, progress=progress)
    if json_output:
        print_json(result.to_dict())
        return
    if result.autosaved:
        info(f"unsaved work was saved as state {result.autosaved[:12]} (auto-saved before restore)")
    for line in result.releases.messages if result.releases else []:
        info(line)
    for line in result.releases.warnings if result.releases else []:
        warn(line)
    info(
        f"restored state {result.state[:12]}"
        + ("; the VM is running" if result.running else "; start it with `vml up`")
    )


@app.command("rm")
def rm(
    ref: Annotated[str, typer.Argument(help="State: name, id prefix, HEAD, HEAD~N.")],
    project: ProjectOption = None,
) -> None:
    """Remove a state; its child (if one) keeps its content, a state with several children is refused."""
    with status(f"Removing {ref}") as progress:
        state = app_states.remove_state(project, ref, progress=progress)
    info(f"removed state {state.label()}")


@app.command("rename")
def rename(
    ref: Annotated[str, typer.Argument(help="State: name, id prefix, HEAD, HEAD~N.")],
    name: Annotated[str, typer.Argument(help="New name.")],
    project: ProjectOption = None,
) -> None:
    """Give a state a new name (its id never changes)."""
    state = app_states.rename_state(project, ref, name)
    info(f"state {state.id[:12]} is now called {state.name}")
