"""KVM/QEMU backend through libvirt: vmlog owns the qcow2 overlay chain, libvirt runs the guests."""

from hypervisors.libvirt.backend import LibvirtHypervisor

__all__ = ["LibvirtHypervisor"]
