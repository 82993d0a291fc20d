"""A guest on a host reached over qemu+ssh boots from a volume of vmlog's pool; its console is read over libvirt."""

from __future__ import annotations

import queue
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hypervisors.base import VMState
from hypervisors.libvirt import connection, events, remote_pool
from hypervisors.libvirt.remote_storage import RemoteStorage
from hypervisors.spec import DiskSpec, VMSpec
from tests.hypervisors.libvirt.remote.sshd_host import RemoteHost

pytestmark = pytest.mark.vm
BOOT_DEADLINE = 600.0  # TCG on a shared, busy 2-core host


@pytest.fixture(scope="module")
def remote_backend(remote_host: RemoteHost) -> Iterator[Any]:
    from hypervisors.libvirt import LibvirtHypervisor

    backend = LibvirtHypervisor(remote_host.uri, accel="tcg")  # KVM is offered here but does not run guests
    yield backend
    backend.close()


def _console_lines(uri: str, vm: str, lines: queue.Queue[str]) -> Callable[[], None]:
    """Read the guest's serial console through a libvirt stream (no file of the host is opened).

    Console data arrives only on a connection opened after libvirt's event loop runs, so this one is its own.
    """
    libvirt = connection.import_libvirt()
    events.ensure_event_loop(libvirt)
    conn = libvirt.open(uri)
    stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
    conn.lookupByName(vm).openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    pending = [b""]

    def readable(_stream: Any, _events: int, _opaque: Any) -> None:
        try:
            chunk = stream.recv(4096)
        except libvirt.libvirtError:
            return
        if not isinstance(chunk, bytes):
            return  # -2: nothing yet
        *whole, pending[0] = (pending[0] + chunk).split(b"\n")
        for line in whole:
            lines.put(line.decode(errors="replace").strip())

    stream.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE, readable, None)

    def close() -> None:
        stream.eventRemoveCallback()
        stream.abort()
        conn.close()

    return close


def test_a_guest_boots_from_a_pool_volume_of_the_remote_host(remote_host: RemoteHost, remote_backend: Any,
                                                              test_appliance_image: Path) -> None:
    started = time.monotonic()
    name = remote_pool.pool_name(f"boot-{secrets.token_hex(4)}")
    storage = RemoteStorage(remote_backend._conn, name, f"{remote_pool.SYSTEM_POOLS_DIR}/{name}")
    vm = f"vmltest-remote-{secrets.token_hex(4)}"
    try:
        storage.upload(test_appliance_image, "appliance.raw")
        system = storage.create_overlay("system.qcow2", "appliance.raw", cluster_size=65536)
        spec = VMSpec(name=vm, cpus=1, memory_mib=128,
                      disks=(DiskSpec(path=Path(system.path), format="qcow2", label="system"),))
        remote_backend.define(spec)
        remote_backend.start(vm)
        lines: queue.Queue[str] = queue.Queue()
        close_console = _console_lines(remote_host.uri, vm, lines)
        seen: list[str] = []
        deadline = time.monotonic() + BOOT_DEADLINE
        while not any("VMLOG-READY" in line for line in seen):
            try:
                seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"no VMLOG-READY on the console within {BOOT_DEADLINE:g} s: {seen[-20:]}")
        close_console()
        assert remote_backend.state(vm) is VMState.RUNNING
        assert storage.volume("system.qcow2").allocation > 0  # the guest wrote into its layer on the host
        print(f"remote boot to VMLOG-READY: {time.monotonic() - started:.1f} s")
    finally:
        if remote_backend.exists(vm):
            remote_backend.delete(vm)
        for volume in ("system.qcow2", "appliance.raw"):
            if storage.exists(volume):
                storage.delete(volume)
        remote_pool.remove_pool(remote_backend._conn, name)
