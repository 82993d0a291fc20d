"""Reproduction checks on a real VM (libvirt, QEMU, the test appliance's serial agent): one boot per state.

Two states differ in one data file; a check computes a number from it in the guest. It passes on one
state and diverges on the other, both results reach the logbook, ``vml check run`` exits 3, the
states' layer files are byte-identical afterwards and no clone VM is left behind. The project's own VM
keeps running through it all, on its own live layer, and its guest still sees its own data.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmlog.app import checks, projects, running
from vmlog.app import states as app_states
from vmlog.cli.check import app as check_app
from vmlog.projects.backends import open_backend
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 240.0
NAME = "repro"
# the guest computes the mean of the numbers in the file: the "analysis"
MEAN = "awk '{s += $1; n += 1} END {printf \"%.2f\\n\", s / n}' /data/masses"


def _write_masses(guest: GuestChannel, values: list[float]) -> None:
    lines = "\\n".join(str(v) for v in values)
    guest.check_output(f"printf '{lines}\\n' > /data/masses; sync")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, test_appliance_image: Path) -> Iterator[Workspace]:
    """A home with project ``repro``: state ``nominal`` (mean 172.4) and ``shifted`` (mean 175.0), its VM running."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VMLOG_HOME", str(tmp_path_factory.mktemp("checks-vm") / "home"))
        ctx = Workspace.default()
        try:
            from hypervisors.libvirt import LibvirtHypervisor

            with LibvirtHypervisor() as hv:
                if not hv.probe().available:
                    pytest.skip("libvirt is not usable here")
        except ImportError as exc:
            pytest.skip(f"libvirt is not usable here: {exc}")
        projects.new_project(NAME, str(test_appliance_image), memory_mib=256, ctx=ctx)
        try:
            running.up(NAME, ctx=ctx)
            spec = ctx.projects.get(NAME).load().spec
            with GuestChannel(Path(spec["channel_socket"])) as guest:
                guest.wait_ready(BOOT_TIMEOUT)
                _write_masses(guest, [172.0, 172.8, 172.4])
                app_states.save_state(NAME, "nominal", ctx=ctx)
                _write_masses(guest, [175.0, 174.6, 175.4])
                app_states.save_state(NAME, "shifted", ctx=ctx)
                guest.check_output("echo live-only > /data/live; sync")
            checks.add_check(NAME, MEAN, checks.expectation(number=172.4, tolerance="0.1"), project=NAME, ctx=ctx)
            yield ctx
        finally:
            projects.remove_project(NAME, ctx=ctx)


def _state_layer_digests(ctx: Workspace) -> dict[str, str]:
    files = ctx.projects.get(NAME)
    layers = [layer for state in files.states().values() for layer in state.layers.values()]
    return {name: hashlib.sha256(files.layers.path(name).read_bytes()).hexdigest() for name in sorted(layers)}


def _home_vms(ctx: Workspace) -> list[str]:
    """The VMs of this home (the hypervisor is shared with other homes)."""
    with open_backend(ctx.projects.get(NAME).load()) as backend:
        return sorted(n for n in backend.list_vms() if n.startswith(f"vmlog-{ctx.home.home_id}-"))


def test_check_passes_on_one_state_diverges_on_the_other(ctx: Workspace) -> None:
    before = _state_layer_digests(ctx)
    project = ctx.projects.get(NAME).load()
    vms_before = _home_vms(ctx)
    started = time.monotonic()
    outcome = CliRunner().invoke(check_app, ["run", "nominal", "shifted", "--json", "-p", NAME])
    took = time.monotonic() - started
    assert outcome.exit_code == checks.EXIT_DIVERGED, outcome.output
    data = json.loads(outcome.stdout)
    by_state = {r["state_label"].split()[-1]: r for r in data["results"]}
    assert by_state["nominal"]["status"] == "passed", by_state["nominal"]
    assert by_state["shifted"]["status"] == "diverged" and by_state["shifted"]["observed"] == "175", by_state
    assert _state_layer_digests(ctx) == before, "a state's layer changed"
    assert running.status(NAME, ctx=ctx).vm.label == "running", "the project's own VM was disturbed"
    spec = ctx.projects.get(NAME).load().spec
    with GuestChannel(Path(spec["channel_socket"])) as guest:
        guest.wait_ready(60)
        assert guest.check_output("cat /data/live; awk 'END {print $1}' /data/masses").split() == ["live-only", "175.4"]
    assert _home_vms(ctx) == vms_before == [project.vm_name], "a clone VM was left defined"
    rows = [e for e in ctx.logbook.entries(project=NAME) if e.action == "check result"]
    states = {s.name: s.id for s in ctx.projects.get(NAME).states().values()}
    assert {(e.state_id, e.outcome) for e in rows} == {(states["nominal"], "ok"), (states["shifted"], "failed")}
    last = checks.last_check_results(NAME, ctx=ctx)
    assert last[states["nominal"]].status == "passed" and last[states["shifted"]].status == "diverged"
    print(f"check run of two states took {took:.1f} s")
