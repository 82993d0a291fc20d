"""A KVM state opened on VirtualBox and VMware, and a VMware state opened on KVM: the guests read the files.

Alice works on libvirt (real QEMU under TCG); Bob imports her bundle as a VirtualBox and as a VMware
project, whose VMs the simulators boot under QEMU. Bob's VMware guest writes more and saves a
state; its incremental bundle goes back onto Alice's libvirt project, where her guest reads it.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_helpers import context_at
from simulators.fixtures import simulated_tools  # noqa: F401 - fixture

from hypervisors import qemu_img
from vmlog.projects import exchange, native_exchange, service
from vmlog.testappliance.agent import GuestChannel

pytestmark = pytest.mark.vm

BOOT_TIMEOUT = 240.0


@pytest.fixture
def two_users(simulated_tools: Path) -> Iterator[tuple[service.Context, service.Context]]:  # noqa: F811
    try:
        from hypervisors.libvirt import LibvirtHypervisor

        with LibvirtHypervisor() as hv:
            if not hv.probe().available:
                pytest.skip("libvirt is not usable here")
    except ImportError as exc:
        pytest.skip(f"libvirt is not usable here: {exc}")
    root = Path(tempfile.mkdtemp(prefix="vmln-"))  # short: guest channel sockets must fit 108 bytes
    a, b = context_at(root / "a"), context_at(root / "b")
    yield a, b
    for ctx in (a, b):
        for name in ctx.projects.names():
            try:
                service.remove_project(name, ctx=ctx)
            except Exception:
                pass
    shutil.rmtree(root, ignore_errors=True)


def _guest(ctx: service.Context, name: str) -> GuestChannel:
    channel = GuestChannel(Path(ctx.projects.get(name).load().spec["channel_socket"]))
    channel.wait_ready(BOOT_TIMEOUT)
    return channel


def _read_files(guest: GuestChannel) -> dict[str, str]:
    names = guest.check_output("mkdir -p /data/shared; ls /data/shared").split()
    return {n: guest.check_output(f"cat /data/shared/{n}").strip() for n in sorted(names)}


def _layer(ctx: service.Context, project: str, state_id: str) -> Path:
    files = ctx.projects.get(project)
    return files.layers.path(files.states()[state_id].layers["system"])


def test_kvm_state_opens_on_virtualbox_and_vmware_and_comes_back(
    two_users: tuple[service.Context, service.Context], test_appliance_image: Path,
    simulated_tools: Path, tmp_path: Path,  # noqa: F811
) -> None:
    alice, bob = two_users
    base = alice.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    bob.images.add_file(test_appliance_image, name="vmlog-test", version="1", format="raw")
    service.new_project("analysis", base.sha256, memory_mib=256, ctx=alice)
    written = {"calibration": secrets.token_hex(16), "notes": secrets.token_hex(8)}
    service.up("analysis", ctx=alice)
    with _guest(alice, "analysis") as guest:
        for name, text in written.items():
            guest.check_output(f"mkdir -p /data/shared; echo {text} > /data/shared/{name}; sync")
        s1 = service.save_state("analysis", "calibrated", ctx=alice)
    service.down("analysis", mode="poweroff", ctx=alice)
    bundle = exchange.export_state("analysis", "calibrated", tmp_path, ctx=alice)
    print(f"\nlibvirt -> native bundle: {bundle.size} bytes")

    options = {"virtualbox": {"machine_folder": str(simulated_tools / "machines")},
               "vmware": {"vm_root": str(simulated_tools / "vms")}}
    for backend, backend_options in options.items():
        imported = exchange.import_state(bundle.path, project=f"on-{backend}", trust=True, backend=backend,
                                         backend_options=backend_options, ctx=bob)
        files = bob.projects.get(imported.project)
        with native_exchange.state_reader(bob.home.cache, files, files.load(), base) as reader:
            layer = reader.layers(files.states()[s1.id])["system"]
            assert qemu_img.compare(layer, "qcow2", _layer(alice, "analysis", s1.id), "qcow2")
        service.up(imported.project, ctx=bob)
        with _guest(bob, imported.project) as guest:
            assert _read_files(guest) == written, backend
            if backend == "vmware":  # Bob goes on working on the Mac
                written["fit"] = secrets.token_hex(16)
                guest.check_output(f"echo {written['fit']} > /data/shared/fit; sync")
                s2 = service.save_state(imported.project, "fitted", ctx=bob)
        service.down(imported.project, mode="poweroff", ctx=bob)

    back = exchange.export_state("on-vmware", "fitted", tmp_path, since="calibrated", ctx=bob)
    print(f"vmware -> libvirt incremental bundle: {back.size} bytes")
    result = exchange.import_state(back.path, trust=True, ctx=alice)
    assert result.project == "analysis" and result.since_id == s1.id
    files = bob.projects.get("on-vmware")
    with native_exchange.state_reader(bob.home.cache, files, files.load(), base,
                                      native_exchange.native_base_of(files, files.load())) as reader:
        layer = reader.layers(files.states()[s2.id])["system"]
        assert qemu_img.compare(_layer(alice, "analysis", s2.id), "qcow2", layer, "qcow2")
    service.restore_state("analysis", s2.id, discard=True, ctx=alice)
    service.up("analysis", ctx=alice)
    with _guest(alice, "analysis") as guest:
        assert _read_files(guest) == written
    service.down("analysis", mode="poweroff", ctx=alice)
