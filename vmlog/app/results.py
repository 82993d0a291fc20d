"""What the typed results of the use cases share: the VM's state as known (or why not), and a read-as-mapping bridge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypervisors.base import VMState


@dataclass(frozen=True)
class VMStatus:
    """A VM's state, or ``None`` with the reason when its backend could not be asked (down, not installed)."""

    state: VMState | None
    reason: str | None = None

    @property
    def known(self) -> bool:
        return self.state is not None

    @property
    def label(self) -> str:
        """The state's value (``running``, ``stopped`` ...) or ``unknown``: what a status dot or column shows."""
        return self.state.value if self.state is not None else "unknown"

    def __str__(self) -> str:
        """As ``--json`` has always written it: the value, or ``unknown (why)``."""
        return self.label if self.state is not None else f"unknown ({self.reason})"


class MappingResult:
    """Lets a result still be read as the mapping its ``to_dict()`` gives (``result["key"]``).

    Callers written when the use cases returned dicts keep working while they move to the
    attributes; new code reads the attributes. Subclasses define ``to_dict()`` (list this class
    after the dataclass that defines it, if any).
    """

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]  # type: ignore[attr-defined]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)  # type: ignore[attr-defined]
