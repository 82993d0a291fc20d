"""Simulated ``vboxapi``, VirtualBox's Python binding of the Main API: the surface vmlog uses, on the simulator.

It is a second client of the same simulated VBoxSVC as the ``VBoxManage`` simulator (the registry in
``$VBOX_SIM_HOME``, see ``simulators/vbox_model.py``), and runs the same machine operations
(``simulators/vbox_ops.py``), so both fronts see one host.

Reference: the VirtualBox SDK (``sdk/bindings/glue/python``: ``vboxapi.VirtualBoxManager`` with
``getVirtualBox``, ``getSessionObject``, ``constants``, ``xcptGetStatus``, ``xcptGetMessage``) and the
Main API reference (https://www.virtualbox.org/sdkref/): ``IVirtualBox::findMachine``;
``IMachine::state``, ``lockMachine``, ``launchVMProcess(session, name, environmentChanges)``,
``findSnapshot``, and on the session's mutable machine ``saveState``, ``discardSavedState``,
``takeSnapshot(name, description, pause)`` (returns the progress and, as an out parameter, the id),
``restoreSnapshot``, ``deleteSnapshot`` (all on IMachine since 7.0); ``ISession::console``,
``machine``, ``unlockMachine``; ``IConsole::powerButton``, ``powerDown``, ``pause``, ``resume``;
``IProgress::completed``, ``percent``, ``resultCode``, ``errorInfo``, ``waitForCompletion``;
the ``MachineState`` and ``LockType`` enums. Failures raise the binding's exception carrying the
COM/XPCOM result code (``errno``) and message (``msg``); failures of a started operation are
reported through its progress object, as VirtualBox does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_TESTS = Path(__file__).resolve().parents[3]
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from simulators import vbox_ops  # noqa: E402
from simulators.vbox_model import VERSION, Registry, VBoxError  # noqa: E402

# MachineState (VirtualBox.xidl): the values are the positions in this list; 7.0 inserted AbortedSaved
# after Aborted, so from Running on every value is one higher than in 6.1 (Running: 5 in 6.1, 6 in 7.x).
_MACHINE_STATE_ENUM = [
    "Null", "PoweredOff", "Saved", "Teleported", "Aborted", "AbortedSaved", "Running", "Paused", "Stuck",
    "Teleporting", "LiveSnapshotting", "Starting", "Stopping", "Saving", "Restoring", "TeleportingPausedVM",
    "TeleportingIn", "DeletingSnapshotOnline", "DeletingSnapshotPaused", "OnlineSnapshotting",
    "RestoringSnapshot", "DeletingSnapshot", "SettingUp", "Snapshotting",
]
if int(VERSION.split(".")[0]) < 7:
    _MACHINE_STATE_ENUM.remove("AbortedSaved")
MACHINE_STATE_VALUES = {name: value for value, name in enumerate(_MACHINE_STATE_ENUM)}
_BY_VBOXMANAGE_NAME = {"poweroff": "PoweredOff", "saved": "Saved", "teleported": "Teleported", "aborted": "Aborted",
                       "aborted-saved": "AbortedSaved", "running": "Running", "paused": "Paused"}
MACHINE_STATES = {name: MACHINE_STATE_VALUES.get(enum, 0) for name, enum in _BY_VBOXMANAGE_NAME.items()}


class Constants:
    """``VirtualBoxManager.constants``: enum values by ``Enum_Value`` name (this version's numbering)."""

    LockType_Null = 0
    LockType_Shared = 1
    LockType_Write = 2
    LockType_VM = 3
    SessionState_Unlocked = 1
    SessionState_Locked = 2


for _name, _value in MACHINE_STATE_VALUES.items():
    setattr(Constants, f"MachineState_{_name}", _value)


class VBoxException(Exception):
    """The binding's exception: ``errno`` is the result code, ``msg`` the message (as xpcom.Exception)."""

    def __init__(self, errno: int, msg: str) -> None:
        super().__init__(errno, msg)
        self.errno = errno
        self.msg = msg


def _raise(exc: VBoxError) -> VBoxException:
    return VBoxException(int(exc.hexcode, 16), exc.message)


class ErrorInfo:
    def __init__(self, exc: VBoxError) -> None:
        self.text = exc.message
        self.resultCode = int(exc.hexcode, 16)
        self.component = exc.component
        self.interfaceID = exc.interface


class Progress:
    """An IProgress of an operation the simulator has already carried out (or that failed)."""

    def __init__(self, error: VBoxError | None = None) -> None:
        self.completed = True
        self.percent = 100
        self.resultCode = int(error.hexcode, 16) if error else 0
        self.errorInfo = ErrorInfo(error) if error else None

    def waitForCompletion(self, timeout: int) -> None:  # noqa: N802 - the Main API's name
        del timeout


def _operation(uuid: str, op: Any, *args: Any, as_progress: bool = True) -> Any:
    """Run ``op(reg, machine, *args)`` on the shared registry; errors of the work go into the progress."""
    try:
        with Registry.open() as reg:
            result = op(reg, reg.find_machine(uuid), *args)
    except VBoxError as exc:
        if as_progress:
            return Progress(exc)
        raise _raise(exc) from None
    return Progress() if as_progress else result


def _check_state(uuid: str, allowed: tuple[str, ...], what: str) -> None:
    with Registry.open() as reg:
        m = reg.find_machine(uuid)
        if m["state"] not in allowed:
            raise _raise(vbox_ops.invalid_state(m, what))


class Snapshot:
    def __init__(self, machine_uuid: str, record: dict[str, Any]) -> None:
        self.machine_uuid = machine_uuid
        self.id = record["uuid"]
        self.name = record["name"]
        self.description = record["description"]
        self.online = record["online"]


class Machine:
    """IMachine; the session's mutable copy is the same object with ``mutable`` set."""

    def __init__(self, uuid: str, mutable: bool = False) -> None:
        self.id = uuid
        self.mutable = mutable

    def _record(self) -> dict[str, Any]:
        with Registry.open() as reg:
            return reg.find_machine(self.id)

    @property
    def name(self) -> str:
        return str(self._record()["name"])

    @property
    def state(self) -> int:
        return MACHINE_STATES.get(self._record()["state"], 0)

    @property
    def currentSnapshot(self) -> Snapshot | None:  # noqa: N802
        m = self._record()
        return Snapshot(self.id, m["snapshots"][m["current_snapshot"]]) if m["current_snapshot"] else None

    def lockMachine(self, session: Session, lockType: int) -> None:  # noqa: N802, N803
        """A shared lock on an unlocked machine becomes a write lock, as Main does."""
        if session.machine is not None:
            raise VBoxException(0x80BB0007, "The given session is busy")
        if lockType == Constants.LockType_Write:
            _check_state(self.id, ("poweroff", "aborted", "saved"), "PoweredOff, Aborted or Saved")
        session.machine = Machine(self.id, mutable=True)

    def launchVMProcess(self, session: Session, name: str, environmentChanges: list[str]) -> Progress:  # noqa: N802, N803
        if name not in ("headless", "gui", "sdl", "separate", ""):
            raise VBoxException(0x80070057, f"Invalid session type: '{name}'")
        del environmentChanges
        session.machine = Machine(self.id, mutable=True)
        return _operation(self.id, vbox_ops.start)

    def findSnapshot(self, nameOrId: str) -> Snapshot:  # noqa: N802, N803
        def find(reg: Registry, m: dict[str, Any]) -> dict[str, Any]:
            return reg.find_snapshot(m, nameOrId)

        return Snapshot(self.id, _operation(self.id, find, as_progress=False))

    # -- methods of the session's mutable machine ------------------------------------------------
    def _require_session(self) -> None:
        if not self.mutable:
            raise VBoxException(0x80BB0007, "The machine is not mutable (lock it with a session first)")

    def saveState(self) -> Progress:  # noqa: N802
        self._require_session()
        return _operation(self.id, vbox_ops.save_state)

    def discardSavedState(self, fRemoveFile: bool) -> None:  # noqa: N802, N803
        self._require_session()
        del fRemoveFile  # the simulator always removes the state file
        _operation(self.id, vbox_ops.discard_state, as_progress=False)

    def takeSnapshot(self, name: str, description: str, pause: bool) -> tuple[Progress, str]:  # noqa: N802
        self._require_session()
        live = not pause
        snap_id = _operation(self.id, vbox_ops.take_snapshot, name, description, live, as_progress=False)
        return Progress(), snap_id

    def restoreSnapshot(self, snapshot: Snapshot) -> Progress:  # noqa: N802
        self._require_session()

        def restore(reg: Registry, m: dict[str, Any]) -> None:
            vbox_ops.restore_snapshot(reg, m, reg.find_snapshot(m, snapshot.id))

        return _operation(self.id, restore)

    def deleteSnapshot(self, id: str) -> Progress:  # noqa: N802, A002 - the Main API's parameter name
        self._require_session()

        def delete(reg: Registry, m: dict[str, Any]) -> None:
            vbox_ops.delete_snapshot(reg, m, reg.find_snapshot(m, id))

        return _operation(self.id, delete)


class Console:
    """IConsole of a running machine's session."""

    def __init__(self, uuid: str) -> None:
        self.machine_uuid = uuid

    def powerButton(self) -> None:  # noqa: N802
        _operation(self.machine_uuid, vbox_ops.power_button, as_progress=False)

    def powerDown(self) -> Progress:  # noqa: N802
        _check_state(self.machine_uuid, ("running", "paused"), "Running or Paused")
        return _operation(self.machine_uuid, vbox_ops.power_off)

    def pause(self) -> None:
        _operation(self.machine_uuid, vbox_ops.pause, as_progress=False)

    def resume(self) -> None:
        _operation(self.machine_uuid, vbox_ops.resume, as_progress=False)


class Session:
    """ISession: holds the lock; ``console`` exists only while the machine runs."""

    def __init__(self) -> None:
        self.machine: Machine | None = None

    @property
    def state(self) -> int:
        return Constants.SessionState_Locked if self.machine else Constants.SessionState_Unlocked

    @property
    def console(self) -> Console | None:
        if self.machine is None:
            return None
        with Registry.open() as reg:
            running = reg.find_machine(self.machine.id)["state"] in ("running", "paused")
        return Console(self.machine.id) if running else None

    def unlockMachine(self) -> None:  # noqa: N802
        if self.machine is None:
            raise VBoxException(0x8000FFFF, "The session is not locked (session state: Unlocked)")
        self.machine = None


class VirtualBox:
    """IVirtualBox."""

    @property
    def version(self) -> str:
        from simulators.vbox_model import VERSION

        return VERSION.split("r")[0]

    @property
    def machines(self) -> list[Machine]:
        with Registry.open() as reg:
            return [Machine(m["uuid"]) for m in reg.machines.values()]

    def findMachine(self, nameOrId: str) -> Machine:  # noqa: N802, N803
        try:
            with Registry.open() as reg:
                return Machine(reg.find_machine(nameOrId)["uuid"])
        except VBoxError as exc:
            raise _raise(exc) from None


class VirtualBoxManager:
    """The binding's entry point: ``VirtualBoxManager(style, params)``."""

    def __init__(self, style: str | None = None, params: Any = None) -> None:
        del style, params
        self.constants = Constants()
        self.type = "XPCOM"

    def getVirtualBox(self) -> VirtualBox:  # noqa: N802
        return VirtualBox()

    def getSessionObject(self, vbox: VirtualBox | None = None) -> Session:  # noqa: N802
        del vbox
        return Session()

    def xcptIsOurXcptKind(self, exc: BaseException) -> bool:  # noqa: N802
        return isinstance(exc, VBoxException)

    def xcptGetStatus(self, exc: BaseException) -> int:  # noqa: N802
        if not isinstance(exc, VBoxException):
            raise TypeError("not a VirtualBox exception")
        return exc.errno

    def xcptGetMessage(self, exc: BaseException) -> str:  # noqa: N802
        if not isinstance(exc, VBoxException):
            raise TypeError("not a VirtualBox exception")
        return exc.msg
