"""Runtime control of VirtualBox VMs over the Main API (``vboxapi``) or, without it, over VBoxManage.

The Main API calls follow the VirtualBox SDK reference (https://www.virtualbox.org/sdkref/):
``IVirtualBox::findMachine``, ``IMachine::launchVMProcess`` with a headless front end,
``IMachine::lockMachine`` (shared lock) to reach ``ISession::console`` and the session's mutable
``IMachine`` (``saveState``, ``takeSnapshot``, ``restoreSnapshot``, ``deleteSnapshot``,
``discardSavedState``: on IMachine since VirtualBox 7.0), and ``IProgress::waitForCompletion`` with
``resultCode``/``errorInfo`` for long operations. Defining VMs and handling media stay on VBoxManage,
whose commands are the documented, version-stable interface for them.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator
from typing import Any

from hypervisors.base import VMState
from hypervisors.errors import BackendUnavailable, HypervisorError
from hypervisors.virtualbox.diagnostics import BACKEND, map_error
from hypervisors.virtualbox.machinereadable import parse_info
from hypervisors.virtualbox.states import main_api_states, map_state
from hypervisors.virtualbox.vboxmanage import ProgressCallback, VBoxManage

# Result codes of the Main API (VirtualBox.xidl), to name them the way VBoxManage does.
RESULT_CODES = {
    0x80BB0001: "VBOX_E_OBJECT_NOT_FOUND",
    0x80BB0002: "VBOX_E_INVALID_VM_STATE",
    0x80BB0003: "VBOX_E_VM_ERROR",
    0x80BB0004: "VBOX_E_FILE_ERROR",
    0x80BB0005: "VBOX_E_IPRT_ERROR",
    0x80BB0007: "VBOX_E_INVALID_OBJECT_STATE",
    0x80BB000C: "VBOX_E_OBJECT_IN_USE",
    0x80004005: "NS_ERROR_FAILURE",
}


class VBoxManageControl:
    """Control through VBoxManage (``startvm``, ``controlvm``, ``snapshot``, ``discardstate``)."""

    api_name = "vboxmanage"

    def __init__(self, tool: VBoxManage, progress: ProgressCallback | None = None) -> None:
        self.tool = tool
        self.progress = progress

    def state(self, name: str) -> VMState:
        info = parse_info(self.tool.run(["showvminfo", name, "--machinereadable"]))
        return map_state(info.get("VMState", ""))

    def start(self, name: str) -> None:
        self.tool.run(["startvm", name, "--type", "headless"], self.progress)

    def power_button(self, name: str) -> None:
        self.tool.run(["controlvm", name, "acpipowerbutton"])

    def poweroff(self, name: str) -> None:
        self.tool.run(["controlvm", name, "poweroff"], self.progress)

    def save_state(self, name: str) -> None:
        self.tool.run(["controlvm", name, "savestate"], self.progress)

    def discard_state(self, name: str) -> None:
        self.tool.run(["discardstate", name])

    def resume(self, name: str) -> None:
        self.tool.run(["controlvm", name, "resume"])

    def take_snapshot(self, name: str, snapshot_name: str, *, live: bool) -> str:
        args = ["snapshot", name, "take", snapshot_name]
        if live:
            args.append("--live")
        out = self.tool.run(args, self.progress)
        for line in out.splitlines():
            if line.startswith("Snapshot taken. UUID: "):
                return line.split("UUID: ", 1)[1].strip()
        # VirtualBox before 6.0 did not print the UUID: the new snapshot is the current one
        info = parse_info(self.tool.run(["showvminfo", name, "--machinereadable"]))
        return info["CurrentSnapshotUUID"]

    def restore_snapshot(self, name: str, snapshot_id: str) -> None:
        self.tool.run(["snapshot", name, "restore", snapshot_id], self.progress)

    def delete_snapshot(self, name: str, snapshot_id: str) -> None:
        self.tool.run(["snapshot", name, "delete", snapshot_id], self.progress)


class MainApiControl:
    """Control through the Main API of VirtualBox's Python binding."""

    api_name = "vboxapi"

    def __init__(self, vboxapi: Any, progress: ProgressCallback | None = None) -> None:
        try:
            self.manager = vboxapi.VirtualBoxManager(None, None)
            self.vbox = self.manager.getVirtualBox()
        except Exception as exc:  # noqa: BLE001 - any binding failure means "use VBoxManage"
            raise BackendUnavailable(f"vboxapi cannot reach VirtualBox: {exc}", backend=BACKEND) from exc
        self.constants = self.manager.constants
        self.state_names = main_api_states(self.constants)  # the binding's numbering (6.1 and 7.x differ)
        self.progress = progress

    # -- plumbing ----------------------------------------------------------------------------
    def _error(self, what: str, exc: Exception) -> HypervisorError:
        try:
            status = self.manager.xcptGetStatus(exc)
            message = self.manager.xcptGetMessage(exc)
        except Exception:  # noqa: BLE001 - not one of the binding's exceptions
            status, message = None, str(exc)
        code = RESULT_CODES.get(int(status) & 0xFFFFFFFF, hex(int(status))) if status is not None else "unknown"
        return map_error(what, f"VBoxManage: error: {message}\nVBoxManage: error: Details: code {code}", 1)

    def _machine(self, name: str) -> Any:
        try:
            return self.vbox.findMachine(name)
        except Exception as exc:  # noqa: BLE001
            raise self._error("find the machine", exc) from exc

    def _wait(self, what: str, progress: Any) -> None:
        while not progress.completed:
            progress.waitForCompletion(500)
            if self.progress is not None:
                self.progress(int(progress.percent))
        if progress.resultCode != 0:
            info = progress.errorInfo
            text = info.text if info is not None else f"result code {progress.resultCode:#x}"
            code = RESULT_CODES.get(progress.resultCode & 0xFFFFFFFF, hex(progress.resultCode))
            raise map_error(what, f"VBoxManage: error: {text}\nVBoxManage: error: Details: code {code}", 1)

    @contextlib.contextmanager
    def _session(self, name: str, what: str) -> Iterator[Any]:
        machine = self._machine(name)
        session = self.manager.getSessionObject()
        try:
            machine.lockMachine(session, self.constants.LockType_Shared)
        except Exception as exc:  # noqa: BLE001
            raise self._error(what, exc) from exc
        try:
            yield session
        except HypervisorError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error(what, exc) from exc
        finally:
            with contextlib.suppress(Exception):
                session.unlockMachine()

    # -- operations --------------------------------------------------------------------------
    def state(self, name: str) -> VMState:
        return map_state(self.state_names.get(int(self._machine(name).state), "unknown"))

    def start(self, name: str) -> None:
        machine = self._machine(name)
        session = self.manager.getSessionObject()
        try:
            progress = machine.launchVMProcess(session, "headless", [])
            self._wait("start the VM", progress)
        except HypervisorError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._error("start the VM", exc) from exc
        finally:
            with contextlib.suppress(Exception):
                session.unlockMachine()

    def power_button(self, name: str) -> None:
        with self._session(name, "press the power button") as session:
            session.console.powerButton()

    def poweroff(self, name: str) -> None:
        with self._session(name, "power off") as session:
            self._wait("power off", session.console.powerDown())

    def save_state(self, name: str) -> None:
        with self._session(name, "save the state") as session:
            self._wait("save the state", session.machine.saveState())

    def discard_state(self, name: str) -> None:
        with self._session(name, "discard the saved state") as session:
            session.machine.discardSavedState(True)

    def resume(self, name: str) -> None:
        with self._session(name, "resume") as session:
            session.console.resume()

    def take_snapshot(self, name: str, snapshot_name: str, *, live: bool) -> str:
        with self._session(name, "take a snapshot") as session:
            progress, snapshot_id = session.machine.takeSnapshot(snapshot_name, "", not live)
            self._wait("take a snapshot", progress)
            return str(snapshot_id)

    def restore_snapshot(self, name: str, snapshot_id: str) -> None:
        with self._session(name, "restore a snapshot") as session:
            snapshot = session.machine.findSnapshot(snapshot_id)
            self._wait("restore a snapshot", session.machine.restoreSnapshot(snapshot))

    def delete_snapshot(self, name: str, snapshot_id: str) -> None:
        with self._session(name, "delete a snapshot") as session:
            self._wait("delete a snapshot", session.machine.deleteSnapshot(snapshot_id))


def open_control(api: str, tool: VBoxManage, progress: ProgressCallback | None = None) -> Any:
    """The Main API when asked for or (``auto``) when ``vboxapi`` imports and connects, else VBoxManage."""
    if api not in ("auto", "vboxapi", "vboxmanage"):
        raise ValueError(f"unknown VirtualBox api {api!r}: use auto, vboxapi or vboxmanage")
    if api in ("auto", "vboxapi"):
        try:
            module = importlib.import_module("vboxapi")
            return MainApiControl(module, progress)
        except (ImportError, BackendUnavailable):
            if api == "vboxapi":
                raise BackendUnavailable(
                    "vboxapi, VirtualBox's Python binding, is not importable", backend=BACKEND,
                    fix="install the VirtualBox SDK and run its `vboxapisetup.py install`") from None
    return VBoxManageControl(tool, progress)


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False
