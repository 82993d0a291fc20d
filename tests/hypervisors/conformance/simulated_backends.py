"""Conformance entries for the VirtualBox and VMware backends, run against the simulators in tests/simulators.

``register(BACKEND_FACTORIES)`` adds ``virtualbox-sim`` (VBoxManage), ``virtualbox-api-sim`` (the Main API
through the simulated ``vboxapi`` binding) and ``vmware-sim`` (vmrun). All of them share one simulated host
per test process: the tools on PATH and their state in one temporary directory, as on a real machine where
VBoxManage and vboxapi talk to the same VBoxSVC. Every QEMU a simulated VM started is killed, by its pid
file, when the process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypervisors.base import Hypervisor

_HOST: Path | None = None
GUEST_USER, GUEST_PASSWORD = "vmlog", "vmlog-password"  # the login of the simulated guests (sim_guest.DEFAULT_USERS)


def simulated_host() -> Path:
    """The process's simulated host directory (created on first use): ``bin/``, tool state, VM folders."""
    global _HOST
    if _HOST is None:
        from simulators.install import PYTHONPATH_DIR, install
        from simulators.qemu_vm import kill_all_under

        work = Path(tempfile.mkdtemp(prefix="vmlog-sim-"))
        bin_dir = install(work / "bin")
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["VBOX_SIM_HOME"] = str(work / "vbox-home")
        os.environ["VMRUN_SIM_HOME"] = str(work / "vmrun-home")
        if str(PYTHONPATH_DIR) not in sys.path:
            sys.path.append(str(PYTHONPATH_DIR))  # the simulated VirtualBox SDK binding (``vboxapi``)

        def cleanup() -> None:
            kill_all_under(work)
            shutil.rmtree(work, ignore_errors=True)

        atexit.register(cleanup)
        _HOST = work
    return _HOST


def _virtualbox(api: str) -> Callable[[], Hypervisor]:
    def factory() -> Hypervisor:
        from hypervisors.virtualbox import VirtualBoxHypervisor

        work = simulated_host()
        return VirtualBoxHypervisor(machine_folder=work / "machines", vboxmanage=work / "bin" / "VBoxManage",
                                    api=api, guest_user=GUEST_USER, guest_password=GUEST_PASSWORD)

    return factory


def _vmware() -> Hypervisor:
    from hypervisors.vmware import VMwareHypervisor

    work = simulated_host()
    return VMwareHypervisor(vm_root=work / "vms", vmrun=work / "bin" / "vmrun", guest_user=GUEST_USER,
                            guest_password=GUEST_PASSWORD)


def is_simulated(hv: Hypervisor) -> bool:
    """Whether ``hv`` drives one of the simulators of this process's simulated host."""
    tool = getattr(getattr(hv, "tool", None), "path", None)
    return _HOST is not None and tool is not None and Path(tool).is_relative_to(_HOST)


def install_guest_agent(hv: Hypervisor, vm_name: str) -> None:
    """Install the simulated guest agent (Guest Additions, VMware Tools) in a simulated VM."""
    from simulators.sim_guest import install_agent

    if hv.name == "virtualbox":
        folder = Path(hv.machine_settings(vm_name)["CfgFile"]).parent  # type: ignore[attr-defined]
    else:
        folder = hv.vmx_path(vm_name).parent  # type: ignore[attr-defined]
    install_agent(folder, users={GUEST_USER: GUEST_PASSWORD})


def register(factories: dict[str, Callable[[], Hypervisor]]) -> None:
    factories.setdefault("virtualbox-sim", _virtualbox("vboxmanage"))
    factories.setdefault("virtualbox-api-sim", _virtualbox("vboxapi"))
    factories.setdefault("vmware-sim", _vmware)
