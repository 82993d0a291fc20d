"""Oracle VirtualBox backend: the Main API through ``vboxapi`` when importable, else ``VBoxManage``."""

from hypervisors.virtualbox.backend import VirtualBoxHypervisor

__all__ = ["VirtualBoxHypervisor"]
