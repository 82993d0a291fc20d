"""VMware Workstation/Player/Fusion backend: ``vmrun`` plus ``.vmx`` authoring, linked clones, native snapshots."""

from hypervisors.vmware.backend import VMwareHypervisor

__all__ = ["VMwareHypervisor"]
