"""Running saves past the chain bound on a real VM: the disks move onto checkpoints live, every state keeps its bytes.

One busybox VM boots once; the guest writes 4 KiB into its scratch disk before each save. The bound
is lowered so that a few dozen saves pass it several times (each pass is a shallow block copy and
pivot in libvirt); the domain's chain, as libvirt reports it, never grows past the bound.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_helpers import same_content, snapshot_raw

from hypervisors import registry
from vmlog.app import projects, running
from vmlog.app import states as app_states
from vmlog.projects import checkpoints
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

BOUND = 8
SAVES = 3 * BOUND
BOOT_TIMEOUT = 240.0


@pytest.fixture
def vm_ctx(vmlog_home: Path, kvm_available: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.setattr(checkpoints, "MAX_CHAIN_FILES", BOUND)
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_STACK", 2)  # production: 12 under a bound of 40
    ctx = Workspace.default()
    yield ctx
    for name in ctx.projects.names():
        try:
            projects.remove_project(name, ctx=ctx)
        except Exception:
            pass


def test_running_saves_past_the_bound_restore_byte_for_byte(
    vm_ctx: Workspace, test_appliance_image: Path, tmp_path: Path
) -> None:
    name = "runsaves"
    projects.new_project(name, str(test_appliance_image), memory_mib=256, scratch_size="8M", ctx=vm_ctx)
    files = vm_ctx.projects.get(name)
    running.up(name, ctx=vm_ctx)
    picked = {0: "first", SAVES // 2: "middle", SAVES - 1: "last"}
    references: dict[str, tuple[str, Path]] = {}
    channel = GuestChannel(Path(files.load().spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    started = time.monotonic()
    with channel as guest, registry.open_backend("kvm") as hv:
        for i in range(SAVES):
            guest.check_output(f"dd if=/dev/urandom of=/dev/vdb bs=4096 count=1 seek={i} conv=fsync 2>/dev/null")
            state = app_states.save_state(name, picked.get(i), message=f"running {i}", ctx=vm_ctx)
            project = files.load()
            tops = hv.disk_tops(project.vm_name)
            for label, layer in project.live.items():
                assert tops[label] == files.layers.path(layer)  # the VM writes where project.json says
                assert len(checkpoints.chain_files(tops[label])) <= BOUND, (i, label)
            if i in picked:
                layer = files.layers.path(state.layers["scratch"])
                references[picked[i]] = (state.id, snapshot_raw(layer, tmp_path / f"{picked[i]}.raw"))
        assert guest.check_output("echo still up").strip() == "still up"
    print(f"{SAVES} running saves: {time.monotonic() - started:.1f} s")
    assert files.load().current == references["last"][0]
    running.down(name, mode="poweroff", ctx=vm_ctx)
    for which in ("first", "middle", "last"):
        state_id, reference = references[which]
        app_states.restore_state(name, state_id, discard=True, ctx=vm_ctx)
        live = files.layers.path(files.load().live["scratch"])
        assert same_content(live, reference), which
    app_states.remove_state(name, references["middle"][0], ctx=vm_ctx)  # a state under checkpoints goes
    state_id, reference = references["last"]
    app_states.restore_state(name, state_id, discard=True, ctx=vm_ctx)
    assert same_content(files.layers.path(files.load().live["scratch"]), reference)
