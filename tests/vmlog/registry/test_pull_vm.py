"""A booted guest's state travels through the registry: A pushes it, B (never saw the base) pulls it and boots it."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import RunningRegistry, context_at

from hypervisors import qemu_img
from vmlog.app import projects, running, states
from vmlog.app import registry as app_registry
from vmlog.testappliance.agent import GuestChannel
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm
BOOT_TIMEOUT = 240.0


@pytest.fixture
def two_users() -> Iterator[tuple[Workspace, Workspace]]:
    """Two homes in a short directory (the guest channel's socket path must fit 108 bytes), cleaned up after."""
    from hypervisors.libvirt import LibvirtHypervisor

    with LibvirtHypervisor() as hv:
        if not hv.probe().available:
            pytest.skip("libvirt is not usable here")
    root = Path(tempfile.mkdtemp(prefix="vmlr-"))
    a, b = context_at(root / "a"), context_at(root / "b")
    try:
        yield a, b
    finally:
        for ctx in (a, b):
            for name in ctx.projects.names():
                try:
                    projects.remove_project(name, ctx=ctx)
                except Exception:
                    pass
        shutil.rmtree(root, ignore_errors=True)


def guest(ctx: Workspace, name: str) -> GuestChannel:
    channel = GuestChannel(Path(ctx.projects.get(name).load().spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def layer(ctx: Workspace, project: str, state_id: str) -> Path:
    files = ctx.projects.get(project)
    return files.layers.path(files.states()[state_id].layers["system"])


def test_a_pulled_state_boots_with_the_senders_files(
    two_users: tuple[Workspace, Workspace], test_appliance_image: Path, registry: RunningRegistry
) -> None:
    alice, bob = two_users
    base = alice.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    projects.new_project("analysis", base.sha256, memory_mib=256, ctx=alice)
    secret = secrets.token_hex(16)
    running.up("analysis", ctx=alice)
    with guest(alice, "analysis") as channel:
        channel.check_output(f"mkdir -p /data/shared; echo {secret} > /data/shared/calibration; sync")
        saved = states.save_state("analysis", "calibrated", ctx=alice)
    running.down("analysis", mode="poweroff", ctx=alice)
    login = app_registry.Login(registry.user, registry.password, ca_file=registry.ca_file)
    repo = f"{registry.host}/vm/analysis"
    app_registry.push_state(f"{repo}:calibrated", "analysis", "calibrated", login=login, ctx=alice)

    assert bob.images.list() == []
    pulled = app_registry.pull_state(f"{repo}:calibrated", trust=True, login=login, ctx=bob)
    assert pulled.base_from_registry and bob.images.find(base.sha256) is not None
    project = pulled.imported.project
    assert qemu_img.compare(layer(bob, project, saved.id), "qcow2", layer(alice, "analysis", saved.id), "qcow2")
    running.up(project, ctx=bob)
    try:
        with guest(bob, project) as channel:
            assert channel.check_output("cat /data/shared/calibration").strip() == secret
    finally:
        running.down(project, mode="poweroff", ctx=bob)
