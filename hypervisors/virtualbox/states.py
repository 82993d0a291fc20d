"""VirtualBox machine states (``VMState`` in showvminfo, ``MachineState`` in the Main API) onto VMState."""

from __future__ import annotations

from hypervisors.base import VMState

# VBoxManage prints the lower-case names of the MachineState enum (VBoxManageInfo.cpp: machineStateToName).
STATE_MAP: dict[str, VMState] = {
    "poweroff": VMState.STOPPED,
    "saved": VMState.SAVED,
    "aborted": VMState.CRASHED,
    "aborted-saved": VMState.SAVED,
    "teleported": VMState.STOPPED,
    "running": VMState.RUNNING,
    "paused": VMState.PAUSED,
    "gurumeditation": VMState.CRASHED,
    "stuck": VMState.CRASHED,
    "teleporting": VMState.TRANSITIONING,
    "livesnapshotting": VMState.RUNNING,
    "starting": VMState.TRANSITIONING,
    "stopping": VMState.TRANSITIONING,
    "saving": VMState.TRANSITIONING,
    "restoring": VMState.TRANSITIONING,
    "teleportingpausedvm": VMState.TRANSITIONING,
    "teleportingin": VMState.TRANSITIONING,
    "deletingsnapshotlive": VMState.RUNNING,
    "deletingsnapshotlivepaused": VMState.PAUSED,
    "onlinesnapshotting": VMState.RUNNING,
    "restoringsnapshot": VMState.TRANSITIONING,
    "deletingsnapshot": VMState.TRANSITIONING,
    "settingup": VMState.TRANSITIONING,
    "snapshotting": VMState.TRANSITIONING,
}

# The Main API's MachineState enum names (VirtualBox.xidl) to the names VBoxManage prints. The numbers
# differ between versions (7.0 inserted AbortedSaved=5: Running is 5 in 6.1 and 6 in 7.x), so they are
# read from the binding's own constants (``MachineState_<Name>``), never hard-coded.
MAIN_API_NAMES: dict[str, str] = {
    "PoweredOff": "poweroff", "Saved": "saved", "Teleported": "teleported", "Aborted": "aborted",
    "AbortedSaved": "aborted-saved", "Running": "running", "Paused": "paused", "Stuck": "gurumeditation",
    "Teleporting": "teleporting", "LiveSnapshotting": "livesnapshotting", "Starting": "starting",
    "Stopping": "stopping", "Saving": "saving", "Restoring": "restoring",
    "TeleportingPausedVM": "teleportingpausedvm", "TeleportingIn": "teleportingin",
    "DeletingSnapshotOnline": "deletingsnapshotlive", "DeletingSnapshotPaused": "deletingsnapshotlivepaused",
    "OnlineSnapshotting": "onlinesnapshotting", "RestoringSnapshot": "restoringsnapshot",
    "DeletingSnapshot": "deletingsnapshot", "SettingUp": "settingup", "Snapshotting": "snapshotting",
}


def main_api_states(constants: object) -> dict[int, str]:
    """MachineState value -> VBoxManage name, from a binding's ``constants`` (only the names it defines)."""
    table: dict[int, str] = {}
    for enum_name, name in MAIN_API_NAMES.items():
        try:
            value = getattr(constants, f"MachineState_{enum_name}")
        except Exception:  # noqa: BLE001 - the binding of an older version lacks the name (6.1: AbortedSaved)
            continue
        if isinstance(value, int) and value not in table:
            table[value] = name
    return table


def map_state(name: str) -> VMState:
    return STATE_MAP.get(name.strip().lower(), VMState.UNKNOWN)
