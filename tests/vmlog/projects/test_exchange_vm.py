"""Two users on one machine share a real guest's state: A exports, B (without the base) imports, boots it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import guest as guest_of
from exchange_helpers import read_shared_files, serve_directory, system_layer, two_libvirt_users

from hypervisors import qemu_img
from vmlog.app import exchange, projects, running, states
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm


@pytest.fixture
def two_users() -> Iterator[tuple[Workspace, Workspace]]:
    with two_libvirt_users("vmlx-") as users:
        yield users


def test_state_travels_to_a_user_without_the_base(
    two_users: tuple[Workspace, Workspace], test_appliance_image: Path, tmp_path: Path
) -> None:
    alice, bob = two_users
    www = tmp_path / "www"
    www.mkdir()
    (www / "vmlog-test.raw").symlink_to(test_appliance_image)
    with serve_directory(www) as url:
        base = alice.images.add_file(
            test_appliance_image, name="vmlog-test", version="1", format="raw", urls=[f"{url}/vmlog-test.raw"]
        )
        projects.new_project("analysis", base.sha256, memory_mib=256, ctx=alice)

        # A: the guest writes files; states saved while it runs
        written = {"calibration": secrets.token_hex(16)}
        running.up("analysis", ctx=alice)
        with guest_of(alice, "analysis") as guest:
            guest.check_output(
                f"mkdir -p /data/shared; echo {written['calibration']} > /data/shared/calibration; sync"
            )
            s1 = states.save_state("analysis", "calibrated", ctx=alice)
            written_later = {**written, "fit": secrets.token_hex(16)}
            guest.check_output(f"echo {written_later['fit']} > /data/shared/fit; sync")
            s2 = states.save_state("analysis", "fitted", ctx=alice)
        running.down("analysis", mode="poweroff", ctx=alice)

        # B has never seen the base: the import downloads it from the manifest's URL and verifies it
        assert bob.images.list() == []
        full = exchange.export_state("analysis", "calibrated", tmp_path, ctx=alice)
        assert full.fits_mail
        imported = exchange.import_state(full.path, trust=True, ctx=bob)
    assert imported.base_downloaded and imported.state_id == s1.id
    assert bob.images.find(base.sha256) is not None
    assert qemu_img.compare(
        system_layer(bob, imported.project, s1.id), "qcow2", system_layer(alice, "analysis", s1.id), "qcow2"
    )

    running.up(imported.project, ctx=bob)
    with guest_of(bob, imported.project) as guest:
        assert read_shared_files(guest) == written
    running.down(imported.project, mode="poweroff", ctx=bob)

    # A's next state, as an incremental bundle, applies on top of B's copy (the base is not needed again)
    incremental = exchange.export_state("analysis", "fitted", tmp_path, since="calibrated", ctx=alice)
    assert exchange.inspect_bundle(incremental.path, ctx=bob).since["state_id"] == s1.id
    second = exchange.import_state(incremental.path, trust=True, ctx=bob)
    assert second.project == imported.project and second.since_id == s1.id and not second.base_downloaded
    assert qemu_img.compare(
        system_layer(bob, second.project, s2.id), "qcow2", system_layer(alice, "analysis", s2.id), "qcow2"
    )
    states.restore_state(second.project, s2.id, discard=True, ctx=bob)
    running.up(second.project, ctx=bob)
    with guest_of(bob, second.project) as guest:
        assert read_shared_files(guest) == written_later
    running.down(second.project, mode="poweroff", ctx=bob)
