"""A package's public names imported from their modules on first use, not with the package (PEP 562).

A package such as :mod:`vmlog.bundles` or :mod:`vmlog.releases` gathers light modules (a state's disk
delta, a release record) beside heavy ones (tar readers, signatures, CernVM-FS catalogs). When its
``__init__`` imports every module, each command that needs one light module pays for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, homes: dict[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__`` for ``homes`` (module name -> the names it exports)."""
    home_of = {name: module for module, names in homes.items() for name in names}
    namespace = import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value  # once: the next use is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(home_of))

    return __getattr__, __dir__
