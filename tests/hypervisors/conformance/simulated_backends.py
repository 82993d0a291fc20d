"""Conformance entries for the VirtualBox and VMware backends, run against the simulators in tests/simulators.

``register(BACKEND_FACTORIES)`` adds them; each factory puts the simulated tool on PATH (state in a
fresh temporary directory) and opens the backend on it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypervisors.base import Hypervisor


def _environment() -> Path:
    from simulators.install import install

    work = Path(tempfile.mkdtemp(prefix="vmlog-sim-"))
    bin_dir = install(work / "bin")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["VBOX_SIM_HOME"] = str(work / "vbox-home")
    os.environ["VMRUN_SIM_HOME"] = str(work / "vmrun-home")
    return work


def _virtualbox() -> Hypervisor:
    from hypervisors.virtualbox import VirtualBoxHypervisor

    work = _environment()
    return VirtualBoxHypervisor(machine_folder=work / "machines", vboxmanage=work / "bin" / "VBoxManage",
                                api="vboxmanage")


def _vmware() -> Hypervisor:
    from hypervisors.vmware import VMwareHypervisor

    work = _environment()
    return VMwareHypervisor(vm_root=work / "vms", vmrun=work / "bin" / "vmrun")


def register(factories: dict[str, Callable[[], Hypervisor]]) -> None:
    factories.setdefault("virtualbox-sim", _virtualbox)
    factories.setdefault("vmware-sim", _vmware)
