"""A project with three states on a small raw base, for the archive tests: s1, s2 on s1, and s3 on s1 (a branch)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vmlog.app import projects
from vmlog.app import states as app_states
from vmlog.projects.model import SYSTEM_DISK
from vmlog.workspace import Workspace


def qemu_io(path: Path, *commands: str) -> None:
    args = ["qemu-io", "-f", "qcow2"]
    for command in commands:
        args += ["-c", command]
    subprocess.run([*args, str(path)], check=True, capture_output=True)


@dataclass
class ThreeStates:
    ctx: Workspace
    home: Path
    name: str
    state_ids: dict[str, str]  # state name -> id


def live_layer(ctx: Workspace, name: str) -> Path:
    files = ctx.projects.get(name)
    return files.layers.path(files.load().live[SYSTEM_DISK])


def three_state_project(home: Path, work: Path, *, base_size: int = 32 << 20) -> ThreeStates:
    """The project ``analysis`` in the vmlog home ``home`` (``VMLOG_HOME`` must point there)."""
    ctx = Workspace.default()
    base = work / "base.raw"
    with open(base, "wb") as fh:
        fh.write(os.urandom(1 << 20))  # incompressible bytes at the start, a sparse rest
        fh.truncate(base_size)
    image = ctx.images.add_file(base, name="testbase", version="1", format="raw")
    projects.new_project("analysis", image.sha256, cpus=2, memory_mib=768, ctx=ctx)
    qemu_io(live_layer(ctx, "analysis"), "write -P 0x5a 1M 256k", "write -P 0x17 20M 64k")
    s1 = app_states.save_state("analysis", "s1", message="calibrated", ctx=ctx)
    qemu_io(live_layer(ctx, "analysis"), "write -P 0x33 4M 128k")
    s2 = app_states.save_state("analysis", "s2", message="after the fit", ctx=ctx)
    app_states.restore_state("analysis", "s1", discard=True, ctx=ctx)
    qemu_io(live_layer(ctx, "analysis"), "write -P 0x44 8M 64k")
    s3 = app_states.save_state("analysis", "s3", message="a branch", ctx=ctx)
    return ThreeStates(ctx, home, "analysis", {"s1": s1.id, "s2": s2.id, "s3": s3.id})
