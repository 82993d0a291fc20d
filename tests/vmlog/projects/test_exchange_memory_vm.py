"""A state saved with its memory travels to a second home on the same machine and resumes where it was.

The guest keeps a value only in RAM (``/tmp`` in the test appliance); the importer's VM reads it
back after the import resumed it from the bundle's memory image, under the importer's own VM
name and disk layers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import guest as guest_of
from exchange_helpers import two_libvirt_users

from vmlog.app import exchange, projects, running, states
from vmlog.bundles import BundleReader
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm


@pytest.fixture
def two_users() -> Iterator[tuple[Workspace, Workspace]]:
    with two_libvirt_users("vmlm-") as users:
        yield users


def test_state_with_memory_resumes_in_the_importers_vm(
    two_users: tuple[Workspace, Workspace], test_appliance_image: Path, tmp_path: Path
) -> None:
    alice, bob = two_users
    base = alice.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    bob.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    projects.new_project("warm", base.sha256, memory_mib=256, ctx=alice)
    running.up("warm", ctx=alice)
    token = secrets.token_hex(16)
    # /tmp is on the appliance's initramfs: only a resume from the memory image brings the value back
    with guest_of(alice, "warm") as guest:
        guest.check_output(f"echo {token} > /tmp/token")
        state = states.save_state("warm", "mid-run", memory=True, ctx=alice)
    running.down("warm", mode="poweroff", ctx=alice)  # alice's VM stays defined: same libvirt, other name

    bundle = exchange.export_state("warm", "mid-run", tmp_path, with_memory=True, ctx=alice)
    stack = BundleReader(bundle.path).verify().manifest["memory"]
    assert stack["hypervisor"] == "kvm" and stack["memory_mib"] == 256 and stack["cpus"] == 1
    assert stack["machine"].startswith("pc-") and stack["qemu"].count(".") == 2

    imported = exchange.import_state(bundle.path, trust=True, ctx=bob)
    assert imported.new_project and not imported.memory_skipped, imported.memory_note
    assert imported.state_id == state.id
    assert running.status(imported.project, ctx=bob)["vm"] == "running"  # resumed, not booted
    with guest_of(bob, imported.project) as guest:
        assert guest.check_output("cat /tmp/token").strip() == token
    bob_vm = bob.projects.get(imported.project).load().vm_name
    assert bob_vm != alice.projects.get("warm").load().vm_name
    running.down(imported.project, mode="poweroff", ctx=bob)
