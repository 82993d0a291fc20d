"""The neutral VM spec: what vmlog stores with every state must survive a JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hypervisors.spec import DiskSpec, NicSpec, PortForward, SharedFolder, VMSpec


def sample_spec() -> VMSpec:
    return VMSpec(
        name="analysis-1",
        cpus=2,
        memory_mib=1024,
        disks=(
            DiskSpec(Path("/store/top.qcow2"), "qcow2", label="system"),
            DiskSpec(Path("/store/seed.iso"), "raw", device="cdrom", readonly=True, label="seed"),
        ),
        nics=(NicSpec(forwards=(PortForward(2222, 22),)),),
        shared_folders=(SharedFolder("sw", Path("/mnt/releases/24.0.3")),),
        serial_log=Path("/tmp/console.log"),
        channel_socket=Path("/tmp/agent.sock"),
    )


def test_json_round_trip_keeps_everything() -> None:
    spec = sample_spec()
    data = json.loads(json.dumps(spec.to_dict()))
    assert VMSpec.from_dict(data) == spec
    assert data["disks"][0]["path"] == "/store/top.qcow2"
    assert data["nics"][0]["forwards"][0] == {
        "host_port": 2222, "guest_port": 22, "protocol": "tcp", "host_address": "127.0.0.1"
    }


def test_disk_lookup_by_label() -> None:
    spec = sample_spec()
    assert spec.disk("seed").device == "cdrom"
    with pytest.raises(KeyError):
        spec.disk("scratch")


@pytest.mark.parametrize("name", ["", "-leading-dash", "has space", "slash/name", "x" * 81])
def test_names_every_backend_can_use(name: str) -> None:
    with pytest.raises(ValueError, match="invalid VM name"):
        VMSpec(name=name)


def test_unknown_fields_and_formats_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown VM spec fields: colour"):
        VMSpec.from_dict({"name": "a", "colour": "red"})
    with pytest.raises(ValueError, match="unknown disk format"):
        DiskSpec(Path("x.img"), "qed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cdrom"):
        DiskSpec(Path("x.iso"), "qcow2", device="cdrom")
