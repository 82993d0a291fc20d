"""ProjectWatch turns libvirt events into this home's project names and ignores every other VM."""

from __future__ import annotations

import queue
import secrets
from pathlib import Path

import pytest

from hypervisors.base import VMState
from hypervisors.errors import HypervisorError
from hypervisors.spec import DiskSpec, VMSpec
from vmlog.app import projects, watch
from vmlog.workspace import Workspace

DEADLINE = 60.0


@pytest.fixture
def libvirt_hv():
    from hypervisors.libvirt import LibvirtHypervisor

    try:
        hv = LibvirtHypervisor()
    except HypervisorError as exc:
        pytest.skip(f"libvirt unavailable here: {exc}")
    yield hv
    hv.close()


class Heard:
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, VMState]] = queue.Queue()

    def __call__(self, project: str, state: VMState) -> None:
        self.events.put((project, state))

    def next(self) -> tuple[str, VMState]:
        try:
            return self.events.get(timeout=DEADLINE)
        except queue.Empty:
            pytest.fail(f"no project state event within {DEADLINE:g} s")


def test_events_name_projects_and_skip_foreign_vms(
    ctx: Workspace, base_image: Path, libvirt_hv, tmp_path: Path
) -> None:
    projects.new_project("alpha", str(base_image), ctx=ctx)
    files, project = projects.load("alpha", ctx)
    foreign = VMSpec(name=f"vmltest-foreign-{secrets.token_hex(3)}", memory_mib=64,
                     disks=(DiskSpec(path=base_image, format="raw", label="system"),))
    heard, other = Heard(), Heard()
    first, second = watch.ProjectWatch(heard, ctx), watch.ProjectWatch(other, ctx)
    try:
        assert first.sync() and second.sync()  # libvirt pushes events: nothing left to poll
        assert not first.unwatched
        libvirt_hv.define(foreign)  # another program's VM: never reported
        libvirt_hv.define(files.vm_spec(project))  # alpha's VM appears (as `vml up` would define it)
        assert heard.next() == ("alpha", VMState.STOPPED)
        assert other.next() == ("alpha", VMState.STOPPED)

        first.stop()
        libvirt_hv.redefine(libvirt_hv.spec(project.vm_name))
        assert other.next() == ("alpha", VMState.STOPPED)  # the remaining watch heard it ...
        assert heard.events.empty()  # ... the stopped one did not
    finally:
        first.stop()
        second.stop()
        for name in (foreign.name, project.vm_name):
            if libvirt_hv.exists(name):
                libvirt_hv.delete(name)
        projects.remove_project("alpha", ctx=ctx)


def test_project_row_matches_the_listing(ctx: Workspace, base_image: Path) -> None:
    projects.new_project("alpha", str(base_image), ctx=ctx)
    try:
        listed = {row.name: row for row in projects.list_projects(ctx)}
        assert watch.project_row("alpha", ctx) == listed["alpha"]
        with pytest.raises(Exception, match="no project named"):
            watch.project_row("nope", ctx)
    finally:
        projects.remove_project("alpha", ctx=ctx)
