"""The lazy registry: aliases, unknown names, and a missing SDK that breaks only its own backend."""

from __future__ import annotations

import pytest

from hypervisors import registry
from hypervisors.errors import BackendUnavailable


def test_aliases_map_to_one_backend() -> None:
    assert registry.canonical_name("libvirt") == "kvm"
    assert registry.canonical_name("KVM") == "kvm"
    assert registry.canonical_name("vbox") == "virtualbox"
    with pytest.raises(ValueError, match="unknown backend 'hyperv'"):
        registry.canonical_name("hyperv")


def test_missing_module_is_unavailable_with_its_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = registry.BackendEntry(
        name="kvm", title="test", module="hypervisors._no_such_backend", cls="X", install_hint="install the thing"
    )
    monkeypatch.setitem(registry.BACKENDS, "kvm", broken)
    with pytest.raises(BackendUnavailable) as info:
        registry.backend_class("kvm")
    assert info.value.fix == "install the thing"
    probe = registry.probe("kvm")
    assert not probe.available
    assert probe.fix == "install the thing"
    # the other backends are still asked, each on its own
    assert {p.backend for p in registry.probe_all()} == set(registry.BACKENDS)
