"""Lazy registry of backends: a backend's module is imported only when it is asked for.

Each entry carries the hint that installs what it needs, so a missing SDK breaks only its own
backend and the user learns the command that fixes it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from hypervisors.base import Hypervisor, Probe
from hypervisors.errors import BackendUnavailable, UnknownBackend


@dataclass(frozen=True)
class BackendEntry:
    name: str
    title: str
    module: str
    cls: str
    install_hint: str
    aliases: tuple[str, ...] = ()


BACKENDS: dict[str, BackendEntry] = {
    "kvm": BackendEntry(
        name="kvm",
        title="KVM/QEMU through libvirt",
        module="hypervisors.libvirt",
        cls="LibvirtHypervisor",
        install_hint=(
            "install libvirt-python and libvirt-daemon: `apt-get install libvirt-daemon-system qemu-system-x86"
            " libvirt-dev pkg-config && pip install libvirt-python`, then start libvirtd"
        ),
        aliases=("libvirt", "qemu"),
    ),
    "virtualbox": BackendEntry(
        name="virtualbox",
        title="Oracle VirtualBox",
        module="hypervisors.virtualbox",
        cls="VirtualBoxHypervisor",
        install_hint="install VirtualBox (with its SDK for vboxapi) so that `VBoxManage` is on PATH",
        aliases=("vbox",),
    ),
    "vmware": BackendEntry(
        name="vmware",
        title="VMware Workstation/Player/Fusion",
        module="hypervisors.vmware",
        cls="VMwareHypervisor",
        install_hint="install VMware Workstation, Player or Fusion so that `vmrun` is on PATH",
    ),
}


def canonical_name(name: str) -> str:
    """Map a backend name or alias to its registry key; ``UnknownBackend`` if it is neither."""
    key = name.strip().lower()
    for entry in BACKENDS.values():
        if key == entry.name or key in entry.aliases:
            return entry.name
    aliases = ", ".join(alias for entry in BACKENDS.values() for alias in entry.aliases)
    raise UnknownBackend(
        f"unknown backend {name!r}; the backends are {', '.join(BACKENDS)} (aliases: {aliases})",
        fix=f"pass --backend with one of {', '.join(BACKENDS)}; `vml doctor` shows which of them work here",
    )


def backend_class(name: str) -> type[Hypervisor]:
    """Import and return the backend class, or raise ``BackendUnavailable`` with its install hint."""
    entry = BACKENDS[canonical_name(name)]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the {entry.title} backend cannot load: {exc}", fix=entry.install_hint, backend=entry.name
        ) from exc
    return getattr(module, entry.cls)


def open_backend(name: str, **options: Any) -> Hypervisor:
    """Open a connection to the named backend."""
    return backend_class(name)(**options)


def probe(name: str, **options: Any) -> Probe:
    """Probe one backend; a backend that fails becomes an unavailable ``Probe`` (only an unknown name raises)."""
    entry = BACKENDS[canonical_name(name)]
    try:
        hv = open_backend(entry.name, **options)
    except BackendUnavailable as exc:
        return Probe(backend=entry.name, available=False, summary=exc.message, fix=exc.fix or entry.install_hint)
    except Exception as exc:  # a backend that cannot even open is unavailable, not a crash
        return Probe(backend=entry.name, available=False, summary=str(exc), fix=entry.install_hint)
    try:
        return hv.probe()
    finally:
        hv.close()


def probe_all(**options_by_backend: dict[str, Any]) -> list[Probe]:
    return [probe(name, **options_by_backend.get(name, {})) for name in BACKENDS]
