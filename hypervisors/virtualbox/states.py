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

# The Main API's MachineState enum values (VirtualBox.xidl) to the same names.
MAIN_API_STATES: dict[int, str] = {
    1: "poweroff", 2: "saved", 3: "teleported", 4: "aborted", 5: "aborted-saved", 6: "running", 7: "paused",
    8: "stuck", 9: "teleporting", 10: "livesnapshotting", 11: "starting", 12: "stopping", 13: "saving",
    14: "restoring", 15: "teleportingpausedvm", 16: "teleportingin", 17: "deletingsnapshotlive",
    18: "deletingsnapshotlivepaused", 19: "onlinesnapshotting", 20: "restoringsnapshot", 21: "deletingsnapshot",
    22: "settingup", 23: "snapshotting",
}


def map_state(name: str) -> VMState:
    return STATE_MAP.get(name.strip().lower(), VMState.UNKNOWN)
