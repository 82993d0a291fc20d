"""Hypervisor abstraction: one contract over libvirt/KVM, VirtualBox and VMware.

This package imports nothing of ``vmlog`` or ``ui``; backends are loaded lazily through
:mod:`hypervisors.registry` so that a missing SDK breaks only its own backend.
"""

from hypervisors.base import Capability, Hypervisor, Probe, SnapshotDisk, SnapshotModel, VMState
from hypervisors.errors import (
    BackendUnavailable,
    HypervisorError,
    InvalidState,
    OperationFailed,
    OperationTimeout,
    Unsupported,
    VMExists,
    VMNotFound,
)
from hypervisors.spec import DiskSpec, NicSpec, PortForward, SharedFolder, VMSpec

__all__ = [
    "BackendUnavailable",
    "Capability",
    "DiskSpec",
    "Hypervisor",
    "HypervisorError",
    "InvalidState",
    "NicSpec",
    "OperationFailed",
    "OperationTimeout",
    "PortForward",
    "Probe",
    "SharedFolder",
    "SnapshotDisk",
    "SnapshotModel",
    "Unsupported",
    "VMExists",
    "VMNotFound",
    "VMSpec",
    "VMState",
]
