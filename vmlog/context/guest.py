"""Which guest channel a project's VM has, and opening it: one place, for setup, releases and saves alike.

A project's ``setup.json`` says which agent its guest runs: ``"vmlog"`` (the test appliance's serial
agent, wired to the spec's ``channel_socket``) or ``"standard"`` (the platform's own agent: the QEMU
guest agent under libvirt, reached through the backend's :meth:`~hypervisors.base.Hypervisor.guest_agent`).
Older ``setup.json`` files say ``"agent": true`` for the first. A project on a base vmlog knows
nothing of (an import or an archive of a local cloud image) finds out once its VM runs: a standard
agent that answers a ping is recorded (:func:`answers_standard_agent`), and so is ``"none"`` when
none answered, so that later boots do not wait for it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypervisors.base import Capability, Hypervisor
from hypervisors.errors import ReportableError, Unsupported
from hypervisors.guest import CLOUD_INIT_BOOT_FINISHED, GuestAgent
from vmlog.testappliance.agent import GuestChannel

VMLOG_AGENT = "vmlog"
STANDARD_AGENT = "standard"
NO_AGENT = "none"  # recorded when no standard agent answered in the running VM
AGENT_KINDS = (VMLOG_AGENT, STANDARD_AGENT)
_STANDARD_NAMES = {"standard", "qemu-ga", "qemu-guest-agent", "guest-additions", "vmware-tools"}

# True once the guest finished booting as far as vmlog cares: cloud-init done where cloud-init runs
CLOUD_INIT_DONE = (
    "if command -v cloud-init >/dev/null 2>&1 || [ -d /var/lib/cloud ]; then"
    f" test -e {CLOUD_INIT_BOOT_FINISHED}; fi"
)


def agent_kind_of_boot(boot: dict[str, Any]) -> str | None:
    """The agent a catalog entry's ``boot.agent`` names: ``vmlog``, ``standard`` or None."""
    value = str(boot.get("agent") or "").lower()
    if value == VMLOG_AGENT:
        return VMLOG_AGENT
    return STANDARD_AGENT if value in _STANDARD_NAMES else None


def guest_agent_kind(meta: dict[str, Any]) -> str | None:
    """The agent a project's setup record says its guest runs (``vmlog``, ``standard``) or None."""
    kind = meta.get("guest_agent")
    if kind in AGENT_KINDS:
        return str(kind)
    return VMLOG_AGENT if meta.get("agent") is True or meta.get("agent") == VMLOG_AGENT else None


def agent_unknown(meta: dict[str, Any]) -> bool:
    """True if nothing says whether the guest runs an agent: neither setup, nor a catalog entry, nor a probe."""
    return guest_agent_kind(meta) is None and meta.get("guest_agent") != NO_AGENT


def answers_standard_agent(backend: Hypervisor, vm_name: str, *, timeout: float) -> bool:
    """True if the platform's standard agent answers a ping in the running VM within ``timeout`` seconds.

    Every libvirt domain vmlog defines has the ``org.qemu.guest_agent.0`` channel, so an answer means
    qemu-ga runs in the guest; a booting guest's agent answers only once it started, hence the wait.
    """
    if not backend.can(Capability.GUEST_AGENT):
        return False
    try:
        with backend.guest_agent(vm_name) as agent:
            agent.wait_ready(timeout)
    except ReportableError:
        return False
    return True


def open_guest(backend: Hypervisor, vm_name: str, kind: str | None, channel_socket: Path | None) -> GuestAgent:
    """The guest channel of a running VM: vmlog's serial agent or the backend's standard one.

    ``Unsupported`` when the guest has none vmlog can reach (no agent, or a backend without a channel).
    """
    if kind == VMLOG_AGENT:
        if channel_socket is None:
            raise Unsupported(f"VM {vm_name!r} has no serial channel for vmlog's agent", fix="set the project up again")
        return GuestChannel(channel_socket)
    if kind == STANDARD_AGENT and backend.can(Capability.GUEST_AGENT):
        return backend.guest_agent(vm_name)
    raise Unsupported(
        f"VM {vm_name!r} has no guest agent vmlog can reach",
        fix="install the platform's guest agent in the guest (qemu-guest-agent under libvirt; VirtualBox Guest"
        " Additions or open-vm-tools with VMLOG_GUEST_USER and VMLOG_GUEST_PASSWORD set), or use `vml ssh`",
    )


def cloud_init_finished(agent: GuestAgent, *, timeout: float = 10.0) -> bool:
    """True once cloud-init wrote ``boot-finished`` (or the guest has no cloud-init)."""
    return agent.shell(CLOUD_INIT_DONE, timeout=timeout).exit_code == 0
