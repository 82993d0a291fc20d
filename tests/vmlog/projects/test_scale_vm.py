"""A project of 1,000 saved states on a real VM: it boots, its first, middle and last states restore byte for byte.

The states are made fast: stopped-VM saves after a tiny write into the scratch disk (qemu-io), not
1,000 boots. The chains stay bounded by checkpoints, which is what lets libvirt start the VM.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_helpers import same_content, snapshot_raw, write_pattern
from typer.testing import CliRunner

from hypervisors import qemu_img
from vmlog.app import projects, running
from vmlog.app import states as app_states
from vmlog.projects import checkpoints
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

STATES = 1000
BOOT_TIMEOUT = 240.0


@pytest.fixture
def vm_ctx(vmlog_home: Path) -> Iterator[Workspace]:
    ctx = Workspace.default()
    yield ctx
    for name in ctx.projects.names():
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass


def _live(ctx: Workspace, name: str, label: str) -> Path:
    files = ctx.projects.get(name)
    return files.layers.path(files.load().live[label])


def test_a_thousand_states_boot_and_restore(vm_ctx: Workspace, test_appliance_image: Path, tmp_path: Path) -> None:
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except Exception as exc:
        pytest.skip(f"libvirt is not usable here: {exc}")
    name = "thousand"
    projects.new_project(name, str(test_appliance_image), memory_mib=256, scratch_size="16M", ctx=vm_ctx)
    picked = {0: "first", STATES // 2: "middle", STATES - 1: "last"}
    references: dict[str, tuple[str, Path]] = {}
    started = time.monotonic()
    for i in range(STATES):
        write_pattern(_live(vm_ctx, name, "scratch"), 1 + i % 250, (i % 240) * 65536, 512)
        state = app_states.save_state(name, picked.get(i), message=f"step {i}", ctx=vm_ctx)
        if i in picked:
            layer = vm_ctx.projects.get(name).layers.path(state.layers["scratch"])
            references[picked[i]] = (state.id, snapshot_raw(layer, tmp_path / f"{picked[i]}.raw"))
    saving = time.monotonic() - started
    print(f"{STATES} saves: {saving:.1f} s")
    for label in ("system", "scratch"):
        assert len(checkpoints.chain_files(_live(vm_ctx, name, label))) <= checkpoints.MAX_CHAIN_FILES

    tree = CliRunner().invoke(_cli(), ["state", "tree", "-p", name], catch_exceptions=False)
    assert tree.exit_code == 0, tree.output
    drawn = [line for line in tree.output.splitlines() if line.strip()]
    assert len(drawn) >= STATES and "last" in drawn[0] + drawn[1] and "first" in drawn[-1]

    base = vm_ctx.images.get(vm_ctx.projects.get(name).load().base["sha256"])
    for which in ("first", "last", "middle"):
        state_id, reference = references[which]
        app_states.restore_state(name, state_id, discard=True, ctx=vm_ctx)
        assert same_content(_live(vm_ctx, name, "scratch"), reference), which
        assert qemu_img.compare(_live(vm_ctx, name, "system"), "qcow2", base.path, base.qemu_format), which
    running.up(name, ctx=vm_ctx)  # on the middle state, whose chains went through checkpoints
    spec = vm_ctx.projects.get(name).load().spec
    channel = GuestChannel(Path(spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    with channel as guest:
        assert guest.check_output("echo up").strip() == "up"
    running.down(name, mode="poweroff", ctx=vm_ctx)


def _cli():  # type: ignore[no-untyped-def]
    from vmlog.cli.main import app

    return app
