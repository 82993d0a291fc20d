"""A KVM state opened on VirtualBox and VMware, and a VMware state opened on KVM: the guests read the files.

Alice works on libvirt (real QEMU under TCG); Bob imports her bundle as a VirtualBox and as a VMware
project, whose VMs the simulators boot under QEMU. Bob's VMware guest writes more and saves a
state; its incremental bundle goes back onto Alice's libvirt project, where her guest reads it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import guest as guest_of
from exchange_helpers import read_shared_files, system_layer, two_libvirt_users
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors import qemu_img
from vmlog.app import exchange, projects, running, states
from vmlog.projects.backends import files_driver
from vmlog.projects.driver import private_work_dir
from vmlog.workspace import Workspace

pytestmark = pytest.mark.vm


@pytest.fixture
def two_users(simulated_tools: Path) -> Iterator[tuple[Workspace, Workspace]]:  # noqa: F811
    with two_libvirt_users("vmln-") as users:
        yield users


def test_kvm_state_opens_on_virtualbox_and_vmware_and_comes_back(
    two_users: tuple[Workspace, Workspace], test_appliance_image: Path,
    simulated_tools: Path, tmp_path: Path,  # noqa: F811
) -> None:
    alice, bob = two_users
    base = alice.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    bob.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    projects.new_project("analysis", base.sha256, memory_mib=256, ctx=alice)
    written = {"calibration": secrets.token_hex(16), "notes": secrets.token_hex(8)}
    running.up("analysis", ctx=alice)
    with guest_of(alice, "analysis") as guest:
        for name, text in written.items():
            guest.check_output(f"mkdir -p /data/shared; echo {text} > /data/shared/{name}; sync")
        s1 = states.save_state("analysis", "calibrated", ctx=alice)
    running.down("analysis", mode="poweroff", ctx=alice)
    bundle = exchange.export_state("analysis", "calibrated", tmp_path, ctx=alice)
    print(f"\nlibvirt -> native bundle: {bundle.size} bytes")

    options = {"virtualbox": {"machine_folder": str(simulated_tools / "machines")},
               "vmware": {"vm_root": str(simulated_tools / "vms")}}
    for backend, backend_options in options.items():
        imported = exchange.import_state(bundle.path, project=f"on-{backend}", trust=True, backend=backend,
                                         backend_options=backend_options, ctx=bob)
        files = bob.projects.get(imported.project)
        with files_driver(files.load()) as driver, private_work_dir(bob.home.cache) as work:
            with driver.reading_states(files, files.load(), base, work) as layers_of:
                layer = layers_of(files.states()[s1.id])["system"]
                assert qemu_img.compare(layer, "qcow2", system_layer(alice, "analysis", s1.id), "qcow2")
        running.up(imported.project, ctx=bob)
        with guest_of(bob, imported.project) as guest:
            assert read_shared_files(guest) == written, backend
            if backend == "vmware":  # Bob goes on working on the Mac
                written["fit"] = secrets.token_hex(16)
                guest.check_output(f"echo {written['fit']} > /data/shared/fit; sync")
                s2 = states.save_state(imported.project, "fitted", ctx=bob)
        running.down(imported.project, mode="poweroff", ctx=bob)

    back = exchange.export_state("on-vmware", "fitted", tmp_path, since="calibrated", ctx=bob)
    print(f"vmware -> libvirt incremental bundle: {back.size} bytes")
    result = exchange.import_state(back.path, trust=True, ctx=alice)
    assert result.project == "analysis" and result.since_id == s1.id
    files = bob.projects.get("on-vmware")
    with files_driver(files.load()) as driver, private_work_dir(bob.home.cache) as work:
        with driver.reading_states(files, files.load(), base, work) as layers_of:
            layer = layers_of(files.states()[s2.id])["system"]
            assert qemu_img.compare(system_layer(alice, "analysis", s2.id), "qcow2", layer, "qcow2")
    states.restore_state("analysis", s2.id, discard=True, ctx=alice)
    running.up("analysis", ctx=alice)
    with guest_of(alice, "analysis") as guest:
        assert read_shared_files(guest) == written
    running.down("analysis", mode="poweroff", ctx=alice)
