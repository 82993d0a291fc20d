"""The lazy registry: aliases, unknown names, and a missing SDK that breaks only its own backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hypervisors import registry
from hypervisors.errors import BackendUnavailable, UnknownBackend


def test_aliases_map_to_one_backend() -> None:
    assert registry.canonical_name("libvirt") == "kvm"
    assert registry.canonical_name("KVM") == "kvm"
    assert registry.canonical_name("vbox") == "virtualbox"


@pytest.mark.parametrize(
    "ask", [registry.canonical_name, registry.backend_class, registry.open_backend, registry.probe]
)
def test_an_unknown_name_is_a_usage_error_with_the_names_that_exist(ask: Callable[[str], object]) -> None:
    with pytest.raises(UnknownBackend, match="unknown backend 'hyperv'") as info:
        ask("hyperv")
    assert all(name in info.value.message for name in registry.BACKENDS)
    assert info.value.fix and "vml doctor" in info.value.fix
    assert not isinstance(info.value, ValueError)  # an error of the product, reported without a traceback


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
