"""The QEMU guest agent behind the guest channel contract: the qemu-ga JSON vmlog sends and what it makes of replies.

qemu-ga itself runs only in a real guest (the VM tests on the Debian appliance); here
``libvirt_qemu.qemuAgentCommand`` is replaced by a fake that answers as qemu-ga documents
(https://qemu.readthedocs.io/en/v7.2.0/interop/qemu-ga-ref.html), and the freeze/thaw calls run
on libvirt's test driver, which implements them.
"""

from __future__ import annotations

import base64
import json
import sys
import types
from typing import Any

import pytest

from hypervisors.base import Capability
from hypervisors.errors import OperationTimeout, Unsupported
from hypervisors.libvirt import domain_xml
from hypervisors.libvirt.backend import LibvirtHypervisor
from hypervisors.libvirt.guest_agent import QemuGuestAgent
from hypervisors.spec import DiskSpec, VMSpec

libvirt = pytest.importorskip("libvirt")


class FakeQemuGa:
    """Answers the qemu-ga commands vmlog sends, recording them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {"/etc/hostname": b"guest\n"}
        self.handles: dict[int, tuple[str, str, int]] = {}
        self.polls = 0

    def __call__(self, _domain: Any, command: str, _timeout: int, _flags: int) -> str:
        request = json.loads(command)
        self.sent.append(request)
        return json.dumps({"return": self.answer(request["execute"], request.get("arguments", {}))})

    def answer(self, execute: str, args: dict[str, Any]) -> Any:
        if execute == "guest-ping":
            return {}
        if execute == "guest-info":
            return {"version": "7.2.0", "supported_commands": [{"name": "guest-ping", "enabled": True},
                                                               {"name": "guest-exec", "enabled": False}]}
        if execute == "guest-exec":
            return {"pid": 42}
        if execute == "guest-exec-status":
            self.polls += 1
            if self.polls < 2:
                return {"exited": False}
            return {"exited": True, "exitcode": 3, "out-data": base64.b64encode(b"out\n").decode(),
                    "err-data": base64.b64encode(b"err\n").decode()}
        if execute == "guest-file-open":
            handle = 1000 + len(self.handles)
            self.handles[handle] = (args["path"], args["mode"], 0)
            if args["mode"] == "w":
                self.files[args["path"]] = b""
            return handle
        if execute == "guest-file-read":
            path, mode, pos = self.handles[args["handle"]]
            chunk = self.files[path][pos : pos + 4]  # small reads: the loop must go on until eof
            self.handles[args["handle"]] = (path, mode, pos + len(chunk))
            eof = pos + len(chunk) >= len(self.files[path])
            return {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(), "eof": eof}
        if execute == "guest-file-write":
            path, _mode, _pos = self.handles[args["handle"]]
            self.files[path] += base64.b64decode(args["buf-b64"])
            return {"count": len(base64.b64decode(args["buf-b64"])), "eof": False}
        if execute in ("guest-file-close", "guest-file-flush"):
            return {}
        if execute == "guest-get-osinfo":
            return {"id": "debian", "pretty-name": "Debian GNU/Linux 12 (bookworm)", "version-id": "12",
                    "kernel-release": "6.1.0-57-cloud-amd64"}
        if execute == "guest-network-get-interfaces":
            return [{"name": "lo", "hardware-address": "00:00:00:00:00:00",
                     "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
                    {"name": "ens16", "hardware-address": "52:54:00:12:34:56"}]
        raise AssertionError(execute)


@pytest.fixture
def fake_ga(monkeypatch: pytest.MonkeyPatch) -> FakeQemuGa:
    fake = FakeQemuGa()
    module = types.ModuleType("libvirt_qemu")
    module.qemuAgentCommand = fake  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "libvirt_qemu", module)
    return fake


@pytest.fixture
def agent() -> QemuGuestAgent:
    conn = libvirt.open("test:///default")
    return QemuGuestAgent(libvirt, conn.lookupByName("test"), "test")


def test_every_domain_has_the_guest_agent_channel(tmp_path) -> None:
    spec = VMSpec(name="vm", disks=(DiskSpec(path=tmp_path / "d.qcow2", label="root"),))
    xml = domain_xml.build_domain_xml(spec, domain_xml.DomainOptions())
    assert "<target type=\"virtio\" name=\"org.qemu.guest_agent.0\" />" in xml
    assert "<channel type=\"unix\">" in xml


def test_commands_and_replies(fake_ga: FakeQemuGa, agent: QemuGuestAgent) -> None:
    agent.ping()
    info = agent.info()
    assert info.agent == "qemu-ga" and info.version == "7.2.0" and info.commands == ("guest-ping",)
    result = agent.exec(["/bin/echo", "a b"], stdin=b"in")
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    exec_request = next(r for r in fake_ga.sent if r["execute"] == "guest-exec")
    assert exec_request["arguments"] == {"path": "/bin/echo", "arg": ["a b"], "capture-output": True,
                                         "input-data": base64.b64encode(b"in").decode()}
    assert agent.read_file("/etc/hostname") == b"guest\n"
    agent.write_file("/tmp/x", b"0123456789")
    assert fake_ga.files["/tmp/x"] == b"0123456789"
    assert [r["execute"] for r in fake_ga.sent[-4:]] == [
        "guest-file-open", "guest-file-write", "guest-file-flush", "guest-file-close"
    ]
    assert agent.osinfo().name == "Debian GNU/Linux 12 (bookworm)"
    lo, ens = agent.network_interfaces()
    assert lo.addresses == ("127.0.0.1/8",) and ens.mac == "52:54:00:12:34:56" and ens.addresses == ()


def test_freeze_and_thaw_go_through_libvirt(agent: QemuGuestAgent) -> None:
    assert agent.fsfreeze() == agent.fsthaw() > 0  # the test driver "freezes" its two filesystems


def test_a_driver_without_an_agent_is_unsupported(agent: QemuGuestAgent) -> None:
    with pytest.raises(Unsupported):
        agent.ping()


def test_an_absent_agent_is_a_timeout_with_the_fix(monkeypatch: pytest.MonkeyPatch, agent: QemuGuestAgent) -> None:
    def not_connected(*_args: Any) -> str:
        err = libvirt.libvirtError("Guest agent is not responding: QEMU guest agent is not connected")
        err.err = (86, 0, "Guest agent is not responding: QEMU guest agent is not connected", 0, "", "", "", 0, 0)
        raise err

    module = types.ModuleType("libvirt_qemu")
    module.qemuAgentCommand = not_connected  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "libvirt_qemu", module)
    with pytest.raises(OperationTimeout, match="not connected") as failure:
        agent.ping()
    assert "qemu-guest-agent" in (failure.value.fix or "")


def test_backend_offers_the_agent_only_with_qemu() -> None:
    hv = LibvirtHypervisor("test:///default")
    assert not hv.can(Capability.GUEST_AGENT)  # the test driver has no qemu-ga
    assert isinstance(hv.guest_agent("test"), QemuGuestAgent)
