"""``vml project set``: show or change a project's CPUs, memory, disk sizes and shared folders."""

from __future__ import annotations

from typing import Annotated

import typer

from vmlog.app import vm_settings
from vmlog.cli.output import info, out, print_json

MIB = 1 << 20


def _memory_mib(text: str) -> int:
    """``2048`` (MiB) or ``2G``/``512M`` -> MiB."""
    return int(text) if text.strip().isdigit() else vm_settings.parse_size(text) // MIB


def _size(num: int | None) -> str:
    if num is None:
        return "-"
    return f"{num / (1 << 30):.1f} GiB" if num >= 1 << 30 else f"{num / MIB:.0f} MiB"


def _print(settings: vm_settings.VMSettings) -> None:
    out.print(f"project   {settings.project} (VM {settings.vm.value})")
    out.print(f"cpus      {settings.cpus}")
    out.print(f"memory    {settings.memory_mib} MiB")
    for label, size in settings.disk_sizes.items():
        out.print(f"disk      {label}: {_size(size)}")
    for share in settings.shares:
        out.print(f"share     {share.host_path} as {share.tag} ({'read-only' if share.readonly else 'read-write'})")


def set_settings(
    project: Annotated[str | None, typer.Argument(help="The project (default: the current one).")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="Number of virtual CPUs.")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory, in MiB or with a unit (2G).")] = None,
    disk_size: Annotated[
        str | None, typer.Option("--disk-size", help="Grow a disk to this size (20G); the VM must be off.")
    ] = None,
    disk: Annotated[str, typer.Option("--disk", help="Which disk --disk-size grows.")] = "system",
    share: Annotated[
        list[str] | None, typer.Option("--share", help="Share HOST_DIR:TAG (add :rw to let the guest write).")
    ] = None,
    unshare: Annotated[list[str] | None, typer.Option("--unshare", help="Stop sharing the folder TAG.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show or change the VM's settings. CPUs and memory apply at the next boot; shares live where possible."""
    if cpus is None and memory is None and disk_size is None and not share and not unshare:
        settings = vm_settings.vm_settings(project)
        if json_output:
            print_json(settings.to_dict())
        else:
            _print(settings)
        return
    change = vm_settings.set_vm_settings(
        project, cpus=cpus, memory_mib=_memory_mib(memory) if memory else None, disk_size=disk_size, disk=disk,
        add_shares=share or (), remove_shares=unshare or (),
    )
    if json_output:
        print_json(change.to_dict())
        return
    if not change.changed:
        info("nothing changed")
    for text in change.changed:
        when = " (now)" if text in change.live else (" (at the next boot)" if text in change.next_boot else "")
        info(f"{text}{when}")
    _print(change.settings)
