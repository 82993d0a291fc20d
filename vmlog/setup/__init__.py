"""``vml setup``: one call from nothing to a running, contextualised appliance (CLI and GUI share it)."""

from vmlog.setup.events import PHASES, SetupEvent, SetupProgress, no_events
from vmlog.setup.service import SetupResult, SshAccess, setup, ssh_access

__all__ = [
    "PHASES",
    "SetupEvent",
    "SetupProgress",
    "SetupResult",
    "SshAccess",
    "no_events",
    "setup",
    "ssh_access",
]
