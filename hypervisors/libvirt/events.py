"""Domain lifecycle events from libvirt: the process-wide event loop and one watch per subscriber.

libvirt delivers events (and keepalive pings) only to connections opened *after* an event loop
implementation was registered in the process, and only while some thread runs that loop. So:

* :func:`ensure_event_loop` registers libvirt's default implementation and starts one daemon thread
  running ``virEventRunDefaultImpl``. It is idempotent and thread-safe; the first caller does the
  work, every later call returns at once. A program that runs its own libvirt event loop (e.g. an
  asyncio one) must register it before the first watch and call :func:`event_loop_provided`.
* A :class:`LifecycleWatch` never reuses the backend's ordinary connection (which may have been
  opened before the loop existed and would then stay deaf): it opens its own, after
  :func:`ensure_event_loop`, with keepalive on, so a daemon that dies or a network that drops is
  noticed within ``interval * (count + 1)`` seconds rather than never.
* When the connection is lost the watch reconnects in the background and then reports the current
  state of every domain, so a subscriber catches up on whatever changed while it was deaf.

Callbacks run on the event-loop thread (or the watch's reconnect thread): they must be quick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hypervisors.base import VMState
from hypervisors.errors import HypervisorError
from hypervisors.libvirt import connection, states

log = logging.getLogger(__name__)

# virDomainEventType and the details that matter here (libvirt's stable ABI, see states.py).
EVENT_DEFINED, EVENT_UNDEFINED, EVENT_STARTED, EVENT_SUSPENDED, EVENT_RESUMED = range(5)
EVENT_STOPPED, EVENT_SHUTDOWN, EVENT_PMSUSPENDED, EVENT_CRASHED = range(5, 9)
EVENT_ID_LIFECYCLE = 0

# virDomainEventSuspendedDetailType -> virDomainPausedReason
_SUSPENDED_REASONS = {
    0: 1,  # PAUSED -> USER (or busy: asked from the domain, see below)
    1: states.PAUSED_MIGRATION,
    2: 5,  # IOERROR
    3: 6,  # WATCHDOG
    4: 0,  # RESTORED (paused after a restore) -> UNKNOWN
    5: 7,  # FROM_SNAPSHOT
    6: 0,  # API_ERROR -> UNKNOWN
    7: 12,  # POSTCOPY
    8: 13,  # POSTCOPY_FAILED
}
# virDomainEventStoppedDetailType -> virDomainShutoffReason
_STOPPED_REASONS = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7}
SUSPENDED_PAUSED = 0
STOPPED_SAVED = 4

KEEPALIVE_INTERVAL = 5  # seconds between pings on an idle connection
KEEPALIVE_COUNT = 3  # unanswered pings before the connection counts as dead
RECONNECT_SECONDS = 2.0

_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None
_loop_provided = False


def event_state(event: int, detail: int) -> tuple[int, int] | None:
    """The (virDomainState, reason) a lifecycle event leaves the domain in, as far as the event says.

    ``None`` for ``DEFINED``: a definition changes, not the state, so the domain must be asked.
    """
    if event == EVENT_DEFINED:
        return None
    if event == EVENT_UNDEFINED:
        return states.SHUTOFF, 0  # gone: for vmlog, a VM that is not defined is stopped
    if event in (EVENT_STARTED, EVENT_RESUMED):
        return states.RUNNING, 0
    if event == EVENT_SUSPENDED:
        return states.PAUSED, _SUSPENDED_REASONS.get(detail, 0)
    if event == EVENT_STOPPED:
        return states.SHUTOFF, _STOPPED_REASONS.get(detail, 0)
    if event == EVENT_SHUTDOWN:
        return states.SHUTDOWN, 0
    if event == EVENT_PMSUSPENDED:
        return states.PMSUSPENDED, 0
    if event == EVENT_CRASHED:
        return states.CRASHED, 0
    return states.NOSTATE, 0


def event_loop_provided() -> None:
    """Declare that the program registered and runs its own libvirt event loop (before any watch)."""
    global _loop_provided
    with _loop_lock:
        _loop_provided = True


def ensure_event_loop(libvirt: ModuleType) -> None:
    """Register libvirt's default event loop once per process and run it on a daemon thread.

    Must happen before opening any connection that should deliver events; connections opened
    earlier keep working but never deliver events.
    """
    global _loop_thread
    with _loop_lock:
        if _loop_provided or (_loop_thread is not None and _loop_thread.is_alive()):
            return
        if _loop_thread is None:
            libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_loop, args=(libvirt,), name="libvirt-events", daemon=True)
        thread.start()
        _loop_thread = thread


def _run_loop(libvirt: ModuleType) -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # one bad iteration must not silence every watch of the process
            log.exception("libvirt event loop iteration failed")


class LifecycleWatch:
    """Reports state changes of every domain behind ``uri`` to ``callback(name, VMState)``."""

    def __init__(
        self,
        libvirt: ModuleType,
        uri: str,
        callback: Callable[[str, VMState], None],
        *,
        keepalive: tuple[int, int] = (KEEPALIVE_INTERVAL, KEEPALIVE_COUNT),
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> None:
        self._lv = libvirt
        self.uri = uri
        self._callback = callback
        self._keepalive = keepalive
        self._reconnect_seconds = reconnect_seconds
        self._dispatch = threading.RLock()  # held while calling back, so stop() waits for a call in flight
        self._active = False
        self._stopped = threading.Event()
        self._lost = threading.Event()
        self._conn: Any = None
        self._callback_id: int | None = None
        self._supervisor: threading.Thread | None = None
        self.reconnects = 0  # how many times a lost connection was re-established

    # -- subscribing ---------------------------------------------------------------------
    def start(self) -> Callable[[], None]:
        """Open the event connection (``BackendUnavailable`` if the daemon is unreachable); returns ``stop``."""
        ensure_event_loop(self._lv)
        self._active = True
        try:
            self._connect()
        except BaseException:
            self._active = False
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="libvirt-watch", daemon=True)
        self._supervisor.start()
        return self.stop

    def stop(self) -> None:
        """Unsubscribe; once this returns the callback is not called again. Idempotent."""
        self._stopped.set()
        self._lost.set()  # wakes the supervisor so it can leave
        with self._dispatch:
            self._active = False
            self._disconnect()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._lost.is_set()

    # -- the connection --------------------------------------------------------------------
    def _connect(self) -> None:
        lv = self._lv
        conn = connection.open_connection(lv, self.uri)
        try:
            _keep_alive(lv, conn, self._keepalive)
            conn.registerCloseCallback(self._on_close, None)
            callback_id = conn.domainEventRegisterAny(None, EVENT_ID_LIFECYCLE, self._on_event, None)
        except lv.libvirtError as exc:
            _close_quietly(lv, conn)
            raise connection.map_error(exc, "watch the VM states at", self.uri) from exc
        with self._dispatch:
            self._conn, self._callback_id = conn, callback_id
            self._lost.clear()
            if not self._active:  # stopped while connecting
                self._disconnect()

    def _disconnect(self) -> None:
        conn, callback_id = self._conn, self._callback_id
        self._conn, self._callback_id = None, None
        if conn is None:
            return
        lv = self._lv
        for undo in (
            lambda: callback_id is not None and conn.domainEventDeregisterAny(callback_id),
            conn.unregisterCloseCallback,
        ):
            try:
                undo()
            except lv.libvirtError:
                pass  # a dead connection has nothing left to undo
        _close_quietly(lv, conn)

    def _on_close(self, _conn: Any, reason: int, _opaque: Any) -> None:
        log.warning("libvirt event connection to %s lost (reason %d); reconnecting", self.uri, reason)
        self._lost.set()

    def _supervise(self) -> None:
        """Reconnect after a loss, then replay every domain's state (events were missed meanwhile)."""
        while not self._stopped.is_set():
            self._lost.wait()
            if self._stopped.is_set():
                return
            with self._dispatch:
                self._disconnect()
            while not self._stopped.is_set():
                try:
                    self._connect()
                except HypervisorError as exc:
                    log.debug("libvirt at %s still unreachable: %s", self.uri, exc)
                    self._stopped.wait(self._reconnect_seconds)
                    continue
                self.reconnects += 1
                self._replay()
                break

    def _replay(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            domains = conn.listAllDomains(0)
        except self._lv.libvirtError:
            return  # lost again: the close callback starts the next round
        for dom in domains:
            try:
                name = dom.name()
                self._deliver(name, self._ask_state(dom))
            except self._lv.libvirtError:
                continue  # undefined meanwhile

    # -- events ------------------------------------------------------------------------------
    def _on_event(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        try:
            name = dom.name()
            self._deliver(name, self._event_to_state(dom, event, detail))
        except Exception:  # an exception here would be printed by libvirt-python and lost
            log.exception("cannot handle libvirt event %d/%d", event, detail)

    def _event_to_state(self, dom: Any, event: int, detail: int) -> VMState:
        mapped = event_state(event, detail)
        if mapped is None or (event == EVENT_SUSPENDED and detail == SUSPENDED_PAUSED):
            # A plain pause may be libvirt busy saving or snapshotting: the domain says which.
            try:
                return self._ask_state(dom)
            except self._lv.libvirtError:
                return VMState.STOPPED if mapped is None else states.map_state(*mapped, False)
        state, reason = mapped
        saved = False
        if state == states.SHUTOFF and event != EVENT_UNDEFINED:
            # Only a managed save leaves an image libvirt resumes from; a save to a file does not.
            try:
                saved = bool(dom.hasManagedSaveImage(0))
            except self._lv.libvirtError:
                saved = False
        return states.map_state(state, reason, saved)

    def _ask_state(self, dom: Any) -> VMState:
        state, reason = dom.state()
        saved = state == states.SHUTOFF and bool(dom.hasManagedSaveImage(0))
        return states.map_state(state, reason, saved)

    def _deliver(self, name: str, state: VMState) -> None:
        with self._dispatch:
            if not self._active:
                return
            try:
                self._callback(name, state)
            except Exception:
                log.exception("VM state callback failed for %s (%s)", name, state.value)


def _keep_alive(libvirt: ModuleType, conn: Any, keepalive: tuple[int, int]) -> None:
    """Ping the daemon on an idle connection; a driver without a daemon (``test:///``) has nothing to ping."""
    try:
        conn.setKeepAlive(*keepalive)
    except libvirt.libvirtError as exc:
        if connection.error_code(exc) != connection.ERR_NO_SUPPORT:
            raise


def _close_quietly(libvirt: ModuleType, conn: Any) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
