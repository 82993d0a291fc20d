"""``vml project``: create, list, show, remove and rename projects."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from vmlog.app import projects
from vmlog.cli.context_options import ContextOption, SshKeyOption, UserOption, context_choice
from vmlog.cli.fast import project_list_header, project_list_width, project_row
from vmlog.cli.output import abort, info, out, print_json, warn
from vmlog.cli.progress import status

app = typer.Typer(
    help="Projects: one VM on a base appliance, with its tree of saved states.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]




def _pull_if_only_in_a_catalog(ref: str, backend: str) -> None:
    """Pull ``ref`` (with the pull's progress bar) when it names a catalog appliance not in the store yet."""
    disk_format = projects.base_to_pull(ref, backend)  # refuses an unknown backend before anything is pulled
    if disk_format is not None:
        from vmlog.cli import appliance as appliance_cli  # here: other project commands never pay for it

        appliance_cli.pull(ref, disk_format=disk_format)


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="Project name (letters, digits, '.', '_', '-').")],
    image: Annotated[
        str | None,
        typer.Argument(help="Base appliance: store ref (name[:version] or sha256), image file, or catalog name."),
    ] = None,
    appliance: Annotated[
        str | None, typer.Option("--appliance", "-a", help="The base appliance, as an option (same as IMAGE).")
    ] = None,
    backend: Annotated[str, typer.Option(help="Hypervisor backend: kvm, virtualbox or vmware.")] = "kvm",
    uri: Annotated[
        str | None,
        typer.Option(help="libvirt URI for the kvm backend; a remote one (qemu+ssh://USER@HOST/system) keeps the"
                     " project's disks on that host."),
    ] = None,
    accel: Annotated[str | None, typer.Option(help="kvm backend accelerator: auto, kvm or tcg.")] = None,
    cpus: Annotated[int, typer.Option(min=1, help="Virtual CPUs.")] = 1,
    memory: Annotated[int, typer.Option(min=32, help="Memory in MiB.")] = 512,
    disk_size: Annotated[
        str | None, typer.Option("--disk-size", help="Add an empty scratch disk of this size (e.g. 20G).")
    ] = None,
    context: ContextOption = None,
    user: UserOption = None,
    ssh_key: SshKeyOption = None,
) -> None:
    """Create a project on a base appliance; it becomes the current project.

    An appliance that is only in a catalog is pulled (downloaded and verified) first. With --context
    (or --user/--ssh-key) the VM gets a seed and an SSH forward, as `vml setup` gives; `vml ssh` logs in.
    """
    base = image or appliance
    if base is None or (image is not None and appliance is not None):
        abort("name the base appliance once: `vml project new NAME --appliance REF`", code=2)
    backend = projects.check_backend(backend)
    _pull_if_only_in_a_catalog(base, backend)
    options = {key: value for key, value in (("uri", uri), ("accel", accel)) if value}
    from vmlog.app import setup_project  # here: listings never pay for the set-up modules

    if context is not None or user is not None or ssh_key is not None or setup_project.is_vagrant_box(base):
        _new_with_context(name, base, context, user, ssh_key, backend=backend, options=options, cpus=cpus,
                          memory=memory, disk_size=disk_size)  # fmt: skip
        return
    with status(f"Creating {name}") as progress:
        project = projects.new_project(
            name,
            base,
            backend=backend,
            backend_options=options,
            cpus=cpus,
            memory_mib=memory,
            scratch_size=disk_size,
            progress=progress,
        )
    where = f", its disks on {project.uri}" if project.remote else ""
    info(
        f"created project {project.name} on {project.base.get('name')}:{project.base.get('version')}"
        f" ({project.backend}{where}); start it with `vml up`"
    )


def _new_with_context(
    name: str, base: str, context: str | None, user: str | None, ssh_key: Path | None, *, backend: str,
    options: dict[str, str], cpus: int, memory: int, disk_size: str | None,
) -> None:  # fmt: skip
    from vmlog.app import contexts, setup_project

    template, context_file = context_choice(context)
    filled = None
    if context is not None or user is not None or ssh_key is not None:
        filled = contexts.context_for_project(
            name, template=template, context_file=context_file, user=user, ssh_key_file=ssh_key
        )
    with status(f"Creating {name}") as progress:
        made = setup_project.new_project_with_context(
            name, base, filled.context if filled else None, kind=filled.kind if filled else None, backend=backend,
            backend_options=options, cpus=cpus, memory_mib=memory, scratch_size=disk_size, progress=progress,
        )  # fmt: skip
    for text in made.warnings:
        warn(text)
    project = made.project
    seed = "no seed" if made.seed == "none" else f"a {made.seed} seed"
    info(
        f"created project {project.name} on {project.base.get('name')}:{project.base.get('version')}"
        f" ({project.backend}) with {seed}, SSH forwarded from 127.0.0.1:{made.ssh_port} for {made.user};"
        " start it with `vml up`, then `vml ssh`"
    )


@app.command("list")
def list_(json_output: JsonOption = False) -> None:
    """Every project, its VM state and how many states it has."""
    rows = projects.list_projects()
    if json_output:
        print_json([row.to_dict() for row in rows])
        return
    if not rows:
        info("no projects yet; create one with `vml project new NAME IMAGE`")
        return
    width = project_list_width(rows)
    out.print(Text(project_list_header(width), style="dim"))
    for row in rows:
        mark, name, rest = project_row(row, width)
        out.print(Text.assemble(mark, (name, "bold"), rest))


@app.command("show")
def show(
    name: Annotated[str | None, typer.Argument(help="Project (default: the current one).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Details of a project: base, backend, VM, current state, live layer."""
    details = projects.show_project(name)
    if json_output:
        print_json(details.to_dict())
        return
    project = details.project
    out.print(Text.assemble((project.name, "bold"), f"  ({project.id})"))
    base = project.base
    out.print(f"  base:     {base.get('name')}:{base.get('version')} ({base.get('sha256', '')[:12]})", markup=False)
    out.print(f"  backend:  {project.backend}  VM {project.vm_name} is {details.vm}", markup=False)
    if project.uri:
        where = "its layers in vmlog's storage pool there" if project.remote else "its layers here"
        out.print(f"  host:     {project.uri} ({where})", markup=False)
    out.print(f"  states:   {details.states}, current {project.current or '(none)'}", markup=False)
    out.print(f"  unsaved:  {'yes' if details.unsaved_changes else 'no'}", markup=False)
    out.print(
        f"  spec:     {project.spec.get('cpus')} CPU, {project.spec.get('memory_mib')} MiB, "
        f"disks {', '.join(project.live)}",
        markup=False,
    )
    out.print(f"  files:    {details.path}", markup=False)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="Project to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a project: its VM, its states and layers (the base appliance stays in the store)."""
    projects.load(name)  # an unknown project is said first, with its fix, before anything is asked
    if not yes:
        if not sys.stdin.isatty():
            abort(f"not deleting project {name} without confirmation", fix=f"`vml project rm {name} --yes`", code=2)
        typer.confirm(f"Delete project {name} with all its states?", abort=True)
    projects.remove_project(name)
    info(f"removed project {name}")


@app.command("rename")
def rename(
    old: Annotated[str, typer.Argument(help="Current name.")],
    new: Annotated[str, typer.Argument(help="New name.")],
) -> None:
    """Rename a project (its VM must be stopped)."""
    projects.rename_project(old, new)
    info(f"renamed {old} to {new}")
