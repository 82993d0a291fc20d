"""``LibvirtHypervisor.host_storage``: the home's pool on the connection's host, named as ``vml doctor --uri`` names it.

libvirt's test driver has storage pools (define, build, volumes from XML) but moves no bytes (no upload or download),
so what does not move bytes is checked on it here; the transfers are checked over SSH in test_remote_storage.py.
"""

from __future__ import annotations

from hypervisors.libvirt import remote_pool
from hypervisors.libvirt.backend import LibvirtHypervisor


def test_the_homes_pool_makes_blank_and_overlay_volumes() -> None:
    with LibvirtHypervisor("test:///default") as hv:
        storage = hv.host_storage("home-1234")
        assert storage.host == "test:///default"
        assert storage.pool_name == remote_pool.pool_name("home-1234")  # type: ignore[attr-defined]
        storage.create_blank("root.qcow2", 1 << 20, cluster_size=65536)
        storage.create_overlay("top.qcow2", "root.qcow2", cluster_size=65536)
        assert storage.volume_names() == ["root.qcow2", "top.qcow2"]
        assert storage.volume_path("top.qcow2").endswith(f"/{storage.pool_name}/top.qcow2")  # type: ignore[attr-defined]
        assert storage.backing_path("top.qcow2") == storage.volume_path("root.qcow2")
        assert storage.backing_path("root.qcow2") is None
        assert storage.allocation("top.qcow2") >= 0
        storage.delete("top.qcow2")
        storage.delete("root.qcow2")
        assert storage.volume_names() == []
