"""The VM a catalog appliance asks for: memory, disks, the seed drive, an SSH forward, and how it reports ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypervisors.spec import DiskSpec, NicSpec, PortForward
from vmlog.appliances.catalog import Appliance, ApplianceVersion
from vmlog.context.guest import VMLOG_AGENT, agent_kind_of_boot
from vmlog.context.project_setup import READY_MARKER
from vmlog.context.readiness import free_tcp_port
from vmlog.context.seed import SEED_KINDS
from vmlog.testappliance.build import APPLIANCE_NAME as TEST_APPLIANCE

SSH_GUEST_PORT = 22
MIN_MEMORY_MIB = 256


def has_agent(appliance: Appliance, version: ApplianceVersion) -> bool:
    """True if the guest runs vmlog's serial agent (the tiny test appliance)."""
    return agent_kind_of_boot(version.boot) == VMLOG_AGENT or appliance.name == TEST_APPLIANCE


def ssh_forward(host_port: int) -> PortForward:
    """The forward ``vml ssh`` uses: ``host_port`` here to the guest's sshd."""
    return PortForward(host_port=host_port, guest_port=SSH_GUEST_PORT)


def seed_drive(path: Path) -> DiskSpec:
    """The read-only CD-ROM that carries a seed (NoCloud, config-2 or CernVM's user-data) to the guest."""
    return DiskSpec(path=path, format="raw", device="cdrom", readonly=True, label="seed")


def ready_plan(appliance: Appliance, version: ApplianceVersion) -> dict[str, Any]:
    """How this appliance's guest shows it is ready, which agent it runs, and whether to forward SSH to it.

    ``boot.agent`` in the catalog names the agent: ``vmlog`` (serial), or a standard one
    (``qemu-ga``, ``standard``, ...), whose guests also get an SSH forward unless ``boot.ssh`` is false.
    """
    agent = has_agent(appliance, version)
    kind = VMLOG_AGENT if agent else agent_kind_of_boot(version.boot)
    marker = version.boot.get("ready_marker") or (READY_MARKER if agent else None)
    return {
        "agent": agent,
        "guest_agent": kind,
        "ready_marker": marker,
        "ssh": bool(version.boot.get("ssh", not agent)),
    }


@dataclass(frozen=True)
class ApplianceVm:
    """The hardware of a project set up from an appliance, and setup's record of how to reach its guest."""

    cpus: int
    memory_mib: int
    scratch_size: str | None
    nics: tuple[NicSpec, ...]
    extra_disks: tuple[DiskSpec, ...]
    ssh_port: int | None
    plan: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def meta(self, appliance: Appliance, version: ApplianceVersion) -> dict[str, Any]:
        """What ``setup.json`` records for the project."""
        return {
            "appliance": appliance.name,
            "version": version.version,
            "catalog": appliance.catalog,
            "context": version.context,
            "ssh_port": self.ssh_port,
            **self.plan,
        }


def appliance_vm(
    appliance: Appliance, version: ApplianceVersion, seed_path: Path, *, cpus: int | None, memory_mib: int | None
) -> ApplianceVm:
    """The VM ``version`` of ``appliance`` needs; the seed drive goes at ``seed_path``, SSH to a free port."""
    plan = ready_plan(appliance, version)
    memory = memory_mib or max(version.min_memory_mib, MIN_MEMORY_MIB)
    warnings = []
    if memory < version.min_memory_mib:
        warnings.append(f"{memory} MiB is below the {version.min_memory_mib} MiB {appliance.name} asks for")
    nics: tuple[NicSpec, ...] = (NicSpec(),)
    ssh_port = None
    if plan["ssh"]:
        ssh_port = free_tcp_port()
        nics = (NicSpec(forwards=(ssh_forward(ssh_port),)),)
    extra: tuple[DiskSpec, ...] = ()
    if version.context in SEED_KINDS:
        extra = (seed_drive(seed_path),)
    return ApplianceVm(
        cpus=cpus or int(version.boot.get("cpus", 1)),
        memory_mib=memory,
        scratch_size=f"{version.scratch_disk_gib}G" if version.scratch_disk_gib else None,
        nics=nics,
        extra_disks=extra,
        ssh_port=ssh_port,
        plan=plan,
        warnings=warnings,
    )
